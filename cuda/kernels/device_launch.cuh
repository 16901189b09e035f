#pragma once
// The device launcher: one grid-stride kernel template that runs any kernel body
// (cuda/kernels/hd.hpp) over [0, n) on the context's stream. Only .cu files include this.
#include <cuda_runtime_api.h>

#include "cuda/check.hpp"
#include "cuda/kernels/hd.hpp"
#include "cuda/kernels/launch.hpp"
#include "cuda/launch.hpp"

namespace wdlab::cuda::kernels {

template <class Body>
__global__ void grid_stride_kernel(Index n, Body body) {
  const Index stride = Index(gridDim.x) * blockDim.x;
  for (Index i = Index(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) body(i);
}

/// Queues body(i) for i < n on `stream`; does not wait. n = 0 launches nothing.
template <class Body>
void launch_device(cudaStream_t stream, Index n, const Body& body) {
  if (n <= 0) return;
  const Launch1d shape = launch_1d(static_cast<std::size_t>(n));
  grid_stride_kernel<<<shape.blocks, shape.threads, 0, stream>>>(n, body);
  WDLAB_CUDA_CHECK_LAUNCH();
}

}  // namespace wdlab::cuda::kernels

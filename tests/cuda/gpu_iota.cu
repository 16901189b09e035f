#include "gpu_iota.hpp"

#include "cuda/check.hpp"
#include "cuda/launch.hpp"

namespace wdlab::cuda {
namespace {

__global__ void iota_kernel(std::int32_t* out, std::size_t n) {
  const std::size_t stride = static_cast<std::size_t>(gridDim.x) * blockDim.x;
  for (std::size_t i = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride)
    out[i] = static_cast<std::int32_t>(i);
}

}  // namespace

void iota(const Context& ctx, DeviceBuffer<std::int32_t>& out) {
  WDLAB_CHECK(out.size() <= static_cast<std::size_t>(INT32_MAX), "iota: values must fit int32");
  const Launch1d shape = launch_1d(out.size());
  if (shape.blocks == 0) return;
  iota_kernel<<<shape.blocks, shape.threads, 0, ctx.stream()>>>(out.data(), out.size());
  WDLAB_CUDA_CHECK_LAUNCH();
}

}  // namespace wdlab::cuda

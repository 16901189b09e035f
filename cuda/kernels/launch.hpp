#pragma once
// Host code (compiled by the C++ compiler) queues kernel bodies on the GPU through this
// declaration; the definition is the grid-stride kernel in device_launch.cuh, explicitly
// instantiated for every body in instantiate_*.cu. So only those small .cu files go through
// nvcc, and the backend's host logic stays plain C++.
#include <cuda_runtime_api.h>

#include "cuda/kernels/hd.hpp"

namespace wdlab::cuda::kernels {

/// Queues body(i) for i < n on `stream` (grid-stride); does not wait. n ≤ 0 launches nothing.
/// Throws CallError when the launch fails (bad configuration, missing kernel image).
template <class Body>
void launch_device(cudaStream_t stream, Index n, const Body& body);

}  // namespace wdlab::cuda::kernels

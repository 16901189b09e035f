#pragma once
// Kernel bodies are functors with `WDLAB_HD void operator()(Index i) const` over a 1-D index
// space (shared/GPU.md, "write kernel bodies as __host__ __device__ functions"). Under nvcc they
// are __host__ __device__ and cuda/kernels/device_launch.cuh runs them in a grid-stride kernel;
// under a plain C++ compiler WDLAB_HD is empty and host_launch.hpp runs the same body in a loop,
// so CI tests indexing, bounds and arithmetic against the reference without a GPU.
// These headers include no CUDA header and no std:: container: plain pointers and sizes only.
#include <cstdint>

#include "common/hd.hpp"

namespace wdlab::cuda::kernels {

using Index = std::int64_t;

/// Whether a kernel overwrites its output (y = f) or adds to it (y += f): backward passes sum
/// the cotangents of a tensor read by several layers. With overwrite the old value is never
/// read, so uninitialized memory (or a NaN left there) cannot leak in.
enum class Accumulate : std::uint32_t { overwrite = 0, add = 1 };

WDLAB_HD inline void store(Accumulate mode, float* out, float value) {
  *out = mode == Accumulate::add ? *out + value : value;
}

/// x ≠ x only for NaN; |x| ≤ max only for finite x (written out: no std::isfinite on device).
WDLAB_HD inline bool is_finite(double x) { return x == x && x - x == 0.0; }

}  // namespace wdlab::cuda::kernels

#pragma once
// Launch shapes for the 1-D grid-stride kernels of this backend. A kernel visits
// i = blockIdx.x·blockDim.x + threadIdx.x, i += gridDim.x·blockDim.x while i < n, so a capped
// grid still covers every element. Plain host code: the shape arithmetic is tested on the CPU.
#include <cstddef>

namespace wdlab::cuda {

struct Launch1d {
  unsigned blocks = 0;   // 0 when n = 0: launch nothing (a 0-block launch is an error)
  unsigned threads = 0;  // per block
};

/// blocks = min(⌈n / threads⌉, max_blocks). Throws InternalError for threads = 0 or > 1024
/// (the hardware limit per block) or max_blocks = 0.
Launch1d launch_1d(std::size_t n, unsigned threads = 256, unsigned max_blocks = 65535);

}  // namespace wdlab::cuda

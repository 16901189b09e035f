#pragma once
// WDLAB_HD marks a function that runs on the host and, compiled by nvcc, on the device: header-only
// code shared by the CPU reference and CUDA kernels (common/philox.hpp, common/data/augment.hpp,
// cuda/kernels/*.hpp). Under a plain C++ compiler it is empty. Defined here only.
#if defined(__CUDACC__)
#define WDLAB_HD __host__ __device__
#else
#define WDLAB_HD
#endif

#pragma once
// cuda::Context: everything a CUDA op needs, passed explicitly to every op (ggml's backend
// context): one device, one stream, a cuBLAS and a cuDNN handle bound to that stream, and a
// grow-only scratch workspace. RAII, neither copyable nor movable (ops hold references to it).
// The library handles live in context.cpp; this header names their types only, so including it
// does not pull in cudnn.h or cublas_v2.h.
#include <cuda_runtime_api.h>

#include <cstddef>
#include <memory>

#include "cuda/device_buffer.hpp"
#include "cuda/device_query.hpp"

// The handle types, as cublas_api.h and cudnn_graph.h declare them (cublasHandle_t,
// cudnnHandle_t); context.cpp asserts that they still are.
struct cublasContext;
struct cudnnContext;

namespace wdlab::cuda {

class Context {
 public:
  /// Makes `device` the calling thread's current device and creates its stream and handles. Throws DeviceError with one
  /// line: query_devices()'s reason when no device is usable ("no usable CUDA device: ..."),
  /// or why this index cannot be used; CallError when creating a stream or handle fails.
  explicit Context(int device = 0);
  ~Context();

  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;
  Context(Context&&) = delete;
  Context& operator=(Context&&) = delete;

  int device() const noexcept;
  const DeviceInfo& info() const noexcept;

  /// Non-blocking stream: work here never waits on the legacy default stream.
  cudaStream_t stream() const noexcept;
  cublasContext* cublas() const noexcept;  // cublasHandle_t, bound to stream()
  cudnnContext* cudnn() const noexcept;    // cudnnHandle_t, bound to stream()

  /// Scratch of at least `bytes` bytes (cuDNN algorithms, reductions). Grow-only: a larger
  /// request waits for the stream, frees the old buffer and allocates the new size, so
  /// pointers from earlier calls are invalid after a call that grew it.
  DeviceBuffer<std::byte>& workspace(std::size_t bytes);
  std::size_t workspace_bytes() const noexcept;

  /// Waits for all work queued on stream(); a fault inside a kernel surfaces here as CallError.
  void synchronize() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace wdlab::cuda

#pragma once
// DeviceBuffer<T>: `count` elements of T in device memory, owned (RAII) and move-only.
// Allocated with cudaMalloc, not the stream-ordered cudaMallocAsync: buffers are allocated once
// per run (data resident on the GPU, shared/GPU.md), and a cudaFreeAsync would tie each buffer's
// lifetime to a stream that may be destroyed first. A zero-size buffer holds no memory and makes
// no CUDA call, so empty tensors need no special case (and exist on machines without a GPU).
#include <cuda_runtime_api.h>

#include <cstddef>
#include <limits>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "common/errors.hpp"
#include "cuda/check.hpp"

namespace wdlab::cuda {

template <class T>
class DeviceBuffer {
  // Bytes are copied to and from the device as they are: no constructors or destructors run there.
  static_assert(std::is_trivially_copyable_v<T>, "DeviceBuffer holds trivially copyable types");

 public:
  DeviceBuffer() = default;

  /// Uninitialized memory for `count` elements; throws CallError when cudaMalloc fails.
  explicit DeviceBuffer(std::size_t count) : count_(count) {
    if (count_ > std::numeric_limits<std::size_t>::max() / sizeof(T))
      throw DeviceError("DeviceBuffer: " + std::to_string(count_) + " elements of " +
                        std::to_string(sizeof(T)) + " bytes overflow size_t");
    if (count_ > 0) WDLAB_CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&data_), bytes()));
  }

  ~DeviceBuffer() { release(); }

  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  DeviceBuffer(DeviceBuffer&& other) noexcept
      : data_(std::exchange(other.data_, nullptr)), count_(std::exchange(other.count_, 0)) {}

  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept {
    if (this != &other) {
      release();
      data_ = std::exchange(other.data_, nullptr);
      count_ = std::exchange(other.count_, 0);
    }
    return *this;
  }

  std::size_t size() const noexcept { return count_; }
  std::size_t bytes() const noexcept { return count_ * sizeof(T); }
  bool empty() const noexcept { return count_ == 0; }
  T* data() noexcept { return data_; }
  const T* data() const noexcept { return data_; }

  /// device ← host, ordered on `stream`; src.size() must equal size(). Returns when the copy is
  /// done, so `src` may be reused at once.
  void copy_from_host(std::span<const T> src, cudaStream_t stream) {
    check_same_size(src.size(), "copy_from_host");
    if (empty()) return;
    WDLAB_CUDA_CHECK(cudaMemcpyAsync(data_, src.data(), bytes(), cudaMemcpyHostToDevice, stream));
    WDLAB_CUDA_CHECK(cudaStreamSynchronize(stream));
  }

  /// host ← device, ordered after the work queued on `stream`; dst.size() must equal size().
  /// Returns when `dst` holds the data.
  void copy_to_host(std::span<T> dst, cudaStream_t stream) const {
    check_same_size(dst.size(), "copy_to_host");
    if (empty()) return;
    WDLAB_CUDA_CHECK(cudaMemcpyAsync(dst.data(), data_, bytes(), cudaMemcpyDeviceToHost, stream));
    WDLAB_CUDA_CHECK(cudaStreamSynchronize(stream));
  }

  /// All bytes to zero (0.0f, 0, +0.0), queued on `stream`; does not wait.
  void fill_zero(cudaStream_t stream) {
    if (empty()) return;
    WDLAB_CUDA_CHECK(cudaMemsetAsync(data_, 0, bytes(), stream));
  }

 private:
  void check_same_size(std::size_t host_count, const char* what) const {
    // A size mismatch is a bug in the caller, not a device failure.
    if (host_count != count_)
      throw InternalError(std::string("DeviceBuffer::") + what + ": host span has " +
                          std::to_string(host_count) + " elements, buffer has " +
                          std::to_string(count_));
  }

  void release() noexcept {
    // A destructor cannot throw; a failing cudaFree here means the context already died of an
    // earlier, reported error.
    if (data_) static_cast<void>(cudaFree(data_));
    data_ = nullptr;
    count_ = 0;
  }

  T* data_ = nullptr;
  std::size_t count_ = 0;
};

/// dst ← src tensor by tensor, device to device, queued on `s` (no host wait): the skip policy's
/// snapshots. dst is reshaped to src's sizes first; empty tensors (running statistics' gradients)
/// are skipped.
inline void copy_device_tensors(std::vector<DeviceBuffer<float>>& dst, const std::vector<DeviceBuffer<float>>& src,
                                cudaStream_t s) {
  if (dst.size() != src.size()) {
    dst.clear();
    for (const auto& b : src) dst.emplace_back(b.size());
  }
  for (std::size_t i = 0; i < src.size(); ++i)
    if (!src[i].empty())
      WDLAB_CUDA_CHECK(cudaMemcpyAsync(dst[i].data(), src[i].data(), src[i].bytes(), cudaMemcpyDeviceToDevice, s));
}

}  // namespace wdlab::cuda

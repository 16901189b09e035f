#pragma once
// PinnedBuffer<T>: `count` elements of T in page-locked host memory (cudaMallocHost), owned and
// move-only. A copy to the device from pinned memory is a DMA queued on the stream, so
// cudaMemcpyAsync returns at once with no host synchronisation, where pageable memory may make
// the runtime stage the data and wait. The caller must not rewrite the buffer before the copy
// that reads it has run: use StagingBuffer (cuda/staging_buffer.hpp), which waits on an event
// recorded after each copy, for anything uploaded more than once. A zero-size buffer makes no
// CUDA call.
#include <cuda_runtime_api.h>

#include <cstddef>
#include <span>
#include <string>
#include <type_traits>
#include <utility>

#include "common/errors.hpp"
#include "cuda/check.hpp"

namespace wdlab::cuda {

template <class T>
class PinnedBuffer {
  static_assert(std::is_trivially_copyable_v<T>, "PinnedBuffer holds trivially copyable types");

 public:
  PinnedBuffer() = default;
  /// Uninitialized memory for `count` elements; throws CallError when cudaMallocHost fails.
  explicit PinnedBuffer(std::size_t count) : count_(count) {
    if (count_ > 0) WDLAB_CUDA_CHECK(cudaMallocHost(reinterpret_cast<void**>(&data_), count_ * sizeof(T)));
  }
  ~PinnedBuffer() {
    // Cannot throw here; a failure means the context already died of an earlier, reported error.
    if (data_) static_cast<void>(cudaFreeHost(data_));
  }
  PinnedBuffer(const PinnedBuffer&) = delete;
  PinnedBuffer& operator=(const PinnedBuffer&) = delete;
  PinnedBuffer(PinnedBuffer&& o) noexcept
      : data_(std::exchange(o.data_, nullptr)), count_(std::exchange(o.count_, 0)) {}
  PinnedBuffer& operator=(PinnedBuffer&& o) noexcept {
    if (this != &o) {
      if (data_) static_cast<void>(cudaFreeHost(data_));
      data_ = std::exchange(o.data_, nullptr);
      count_ = std::exchange(o.count_, 0);
    }
    return *this;
  }
  std::size_t size() const noexcept { return count_; }
  T* data() noexcept { return data_; }
  std::span<T> span() noexcept { return {data_, count_}; }

 private:
  T* data_ = nullptr;
  std::size_t count_ = 0;
};

}  // namespace wdlab::cuda

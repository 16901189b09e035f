#pragma once
// StagingBuffer<T>: pinned host memory for host→device copies issued back to back, with the
// rule every pinned buffer of this backend follows (cuda/README.md "Pinned memory"): the host
// rewrites pinned memory only after the device has read it. cudaMemcpyAsync from pinned memory
// returns before the DMA runs, so a caller that stages batch k+1 while the copy of batch k is
// still queued (the K-FAC factor pass calls gather in a tight loop, with no read-back between
// batches) would hand the device the wrong ids. Each upload records an event after its copy;
// the next upload waits for that event (on the host) before it touches the buffer.
#include <cuda_runtime_api.h>

#include <cstring>
#include <span>
#include <utility>

#include "cuda/check.hpp"
#include "cuda/pinned_buffer.hpp"

namespace wdlab::cuda {

/// A CUDA event without timing (the cheapest kind), owned and move-only; created on first use so
/// that an unused backend makes no CUDA call.
class CopyEvent {
 public:
  CopyEvent() = default;
  ~CopyEvent() {
    if (e_) static_cast<void>(cudaEventDestroy(e_));  // cannot throw; see PinnedBuffer
  }
  CopyEvent(const CopyEvent&) = delete;
  CopyEvent& operator=(const CopyEvent&) = delete;
  CopyEvent(CopyEvent&& o) noexcept : e_(std::exchange(o.e_, nullptr)), pending_(std::exchange(o.pending_, false)) {}
  CopyEvent& operator=(CopyEvent&& o) noexcept {
    if (this != &o) {
      if (e_) static_cast<void>(cudaEventDestroy(e_));
      e_ = std::exchange(o.e_, nullptr);
      pending_ = std::exchange(o.pending_, false);
    }
    return *this;
  }
  /// Marks the point of `s` after the work queued so far.
  void record(cudaStream_t s) {
    if (!e_) WDLAB_CUDA_CHECK(cudaEventCreateWithFlags(&e_, cudaEventDisableTiming));
    WDLAB_CUDA_CHECK(cudaEventRecord(e_, s));
    pending_ = true;
  }
  /// Blocks the host until the recorded point has run (no-op when nothing was recorded).
  void wait() {
    if (!pending_) return;
    WDLAB_CUDA_CHECK(cudaEventSynchronize(e_));
    pending_ = false;
  }

 private:
  cudaEvent_t e_ = nullptr;
  bool pending_ = false;
};

template <class T>
class StagingBuffer {
 public:
  /// Queues a copy of `src` to `device_dst` on `s`. Waits first for the previous upload's copy to
  /// have read the pinned memory (usually long done: a step's own read-back waits for the stream).
  void upload(std::span<const T> src, T* device_dst, cudaStream_t s) {
    copied_.wait();
    if (pinned_.size() < src.size()) pinned_ = PinnedBuffer<T>(src.size());
    if (src.empty()) return;
    std::memcpy(pinned_.data(), src.data(), src.size_bytes());
    WDLAB_CUDA_CHECK(cudaMemcpyAsync(device_dst, pinned_.data(), src.size_bytes(), cudaMemcpyHostToDevice, s));
    copied_.record(s);
  }
  ~StagingBuffer() {
    // The pinned memory must outlive a copy still queued; a failed wait means a dead context.
    try {
      copied_.wait();
    } catch (...) {
    }
  }
  StagingBuffer() = default;
  StagingBuffer(const StagingBuffer&) = delete;
  StagingBuffer& operator=(const StagingBuffer&) = delete;

 private:
  PinnedBuffer<T> pinned_;
  CopyEvent copied_;  // declared after pinned_: destroyed first, after the wait above
};

}  // namespace wdlab::cuda

#pragma once
// How the CUDA backend's deterministic reductions split their work, and so how much scratch they
// need: one home for the kernels (cuda/kernels/reduce.hpp, cuda/reductions.*) and the
// device-memory plan (common/train/device_memory_plan.cpp), which is host code built without
// CUDA. Plain C++ (WDLAB_HD, so kernel bodies may call it on the device); no CUDA header.
#include <cstdint>

#include "common/hd.hpp"

namespace wdlab::reduction {

/// Per-channel reductions: about 32 entries per lane, at most 1024 lanes per channel.
inline constexpr std::int64_t kEntriesPerLane = 32, kMaxLanes = 1024;
/// Flat reductions (Σθ, Σθ², segment dot products): contiguous chunks of 1024 entries.
inline constexpr std::int64_t kFlatChunk = 1024;

/// How many chunks of `chunk` entries cover m entries: ⌈m / chunk⌉ (≥ 1 for m ≥ 1).
WDLAB_HD constexpr std::int64_t chunk_count(std::int64_t m, std::int64_t chunk) { return (m + chunk - 1) / chunk; }

/// Lanes per channel of a channel reduction over m entries: ⌈m/32⌉ clamped to [1, 1024]. VGG16's
/// first BN at batch 128 (64 channels of 131072 entries) gets 64·1024 lanes: enough threads to
/// fill a GPU, where one lane per 1024-entry chunk gave 8192.
WDLAB_HD constexpr std::int64_t channel_lanes(std::int64_t m) {
  const std::int64_t l = chunk_count(m, kEntriesPerLane);
  return l < 1 ? 1 : (l > kMaxLanes ? kMaxLanes : l);
}

/// Scratch doubles: a per-channel sum of C channels of m entries (one partial per lane); BN's
/// backward with the ReLU after it fused (Σdy and Σdy⊙x̂ in one walk: two per lane); the flat
/// statistics of n entries (Σ, Σ², non-finite count per chunk).
constexpr std::int64_t channel_partials(std::int64_t C, std::int64_t m) { return C * channel_lanes(m); }
constexpr std::int64_t bn_backward_partials(std::int64_t C, std::int64_t m) { return 2 * channel_partials(C, m); }
constexpr std::int64_t flat_partials(std::int64_t n) { return 3 * chunk_count(n, kFlatChunk); }

}  // namespace wdlab::reduction

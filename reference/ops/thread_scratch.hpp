#pragma once
// Per-thread scratch buffers for the engine's passes (conv chunks, BN's per-column partial sums).
// parallel_for's threads are a persistent pool and a single-threaded pass runs on the caller, so
// step after step a pass reuses the same memory instead of allocating it: a training step
// allocates none of these after its first (test_step_workspace).
#include <cstddef>
#include <vector>

#include "reference/eigen_types.hpp"

namespace wdlab::ref {

/// What a buffer is for: one buffer per purpose and scalar type on each thread, so that a pass
/// may hold several at once.
enum class Scratch { conv_patches, conv_outputs, conv_partials, bn_column_partials };

/// A rows × cols view of this thread's buffer for `purpose`. It only grows and lives as long as
/// the thread; a cache only: what a pass computes never depends on what the buffer held before.
template <class T, Scratch purpose>
Eigen::Map<Mat<T>> thread_scratch(Eigen::Index rows, Eigen::Index cols) {
  thread_local std::vector<T> buf;
  const std::size_t need = std::size_t(rows) * std::size_t(cols);
  if (buf.size() < need) buf.resize(need);
  return Eigen::Map<Mat<T>>(buf.data(), rows, cols);
}

}  // namespace wdlab::ref

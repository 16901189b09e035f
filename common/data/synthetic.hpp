#pragma once
// Synthetic classification sets drawn from the shared Philox RNG (Purpose::synthetic), so the
// same (n, dim, classes, seed) gives the same set on every machine and backend.
#include <cstddef>
#include <cstdint>

#include "common/data/dataset.hpp"

namespace wdlab::data {

/// n inputs x ~ N(0, I_dim), labelled by a random linear teacher: y = argmax_k (T x)_k with
/// T (classes×dim) ~ N(0, 1) entrywise (first maximum on ties). Draws: T_kj =
/// normal(seed, synthetic, 0, k·dim + j), x_ij = normal(seed, synthetic, 1, i·dim + j).
/// Shape N×dim×1×1 (each feature is a "channel", so channel statistics are per feature).
/// Throws UsageError on n < 1, dim < 1 or classes < 2.
Dataset make_gaussian(std::size_t n, int dim, int classes, std::uint64_t seed);

}  // namespace wdlab::data

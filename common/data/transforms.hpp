#pragma once
// What is done to a loaded Dataset before training: per-channel normalization, the held-out
// validation split, the per-epoch example order and (augment.hpp) the per-image augmentation.
// Every random choice comes from the shared Philox RNG, keyed by (seed, purpose, step, index),
// so CPU and GPU runs, and a resumed run, see the same data in the same order.
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "common/data/augment.hpp"
#include "common/data/dataset.hpp"

namespace wdlab::data {

/// Per-channel mean and (population) standard deviation over all N·H·W values of a channel.
struct ChannelStats {
  std::vector<double> mean, std;
};

/// mean_c = Σ x / (N·H·W), std_c = sqrt(Σ (x − mean_c)² / (N·H·W)); two passes, in double.
ChannelStats channel_stats(const Dataset& d);
/// In place: x ← (x − mean_c) / std_c. Compute the stats on the training split and apply them to
/// every split. Throws DataError if a std is 0 or not finite, UsageError on a channel mismatch.
void normalize(Dataset& d, const ChannelStats& stats);

struct Holdout {
  Dataset train, val;
};

/// A uniformly random n_val-example validation set (the paper holds out 5000). The permutation is
/// a Fisher–Yates shuffle with swap index j_i = rng::below(seed, split, 0, i, i+1) for
/// i = n−1..1; val is its first n_val entries, train the rest, each kept in original order.
/// Throws UsageError("n_val") unless 1 ≤ n_val < d.size().
Holdout split_holdout(const Dataset& d, std::size_t n_val, std::uint64_t seed);

/// The order of examples in epoch `epoch`: Fisher–Yates as above with
/// rng::below(seed, data_order, epoch, i, i+1). A function of (n, seed, epoch) only, so a resumed
/// run replays the same order without saved state. Throws UsageError("n") if n ≥ 2³².
std::vector<std::uint32_t> epoch_permutation(std::size_t n, std::uint64_t seed,
                                             std::uint64_t epoch);

/// CPU loop over augment_image: out holds ids.size() images, image k augmented as example ids[k]
/// at global step `step`. Throws UsageError on a size mismatch or an id ≥ d.size().
void augment_batch(const Dataset& d, std::span<const std::uint32_t> ids, std::uint64_t seed,
                   std::uint64_t step, std::span<float> out, int pad = 4,
                   const float* fill = nullptr);

}  // namespace wdlab::data

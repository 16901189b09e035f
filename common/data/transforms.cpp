#include "common/data/transforms.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include <fmt/format.h>

#include "common/errors.hpp"
#include "common/philox.hpp"

namespace wdlab::data {

namespace {

// Fisher–Yates from the top: position i swaps with a uniform j in 0..i. `step` separates
// independent shuffles of the same purpose (epochs).
std::vector<std::uint32_t> shuffle(std::size_t n, std::uint64_t seed, rng::Purpose purpose,
                                   std::uint64_t step) {
  if (n > std::numeric_limits<std::uint32_t>::max())
    throw UsageError("n", fmt::format("{} examples, expected < 2^32", n));
  std::vector<std::uint32_t> p(n);
  std::iota(p.begin(), p.end(), 0u);
  for (std::size_t i = n; i-- > 1;) {
    const std::uint32_t j = rng::below(seed, purpose, step, i, std::uint32_t(i + 1));
    std::swap(p[i], p[j]);
  }
  return p;
}

}  // namespace

ChannelStats channel_stats(const Dataset& d) {
  if (d.size() == 0) throw DataError(d.name, "no examples, cannot compute channel statistics");
  const std::size_t plane = std::size_t(d.height) * std::size_t(d.width);
  const double count = double(d.size() * plane);
  ChannelStats s;
  s.mean.assign(std::size_t(d.channels), 0.0);
  s.std.assign(std::size_t(d.channels), 0.0);
  for (int c = 0; c < d.channels; ++c) {
    double sum = 0;
    for (std::size_t i = 0; i < d.size(); ++i) {
      const float* x = d.image(i) + std::size_t(c) * plane;
      for (std::size_t k = 0; k < plane; ++k) sum += x[k];
    }
    const double mean = sum / count;
    double sq = 0;  // second pass about the mean: no cancellation as in E[x²] − E[x]²
    for (std::size_t i = 0; i < d.size(); ++i) {
      const float* x = d.image(i) + std::size_t(c) * plane;
      for (std::size_t k = 0; k < plane; ++k) sq += (x[k] - mean) * (x[k] - mean);
    }
    s.mean[std::size_t(c)] = mean;
    s.std[std::size_t(c)] = std::sqrt(sq / count);
  }
  return s;
}

void normalize(Dataset& d, const ChannelStats& stats) {
  if (stats.mean.size() != std::size_t(d.channels) || stats.std.size() != std::size_t(d.channels))
    throw UsageError("stats", fmt::format("{} means and {} stds, expected {} (channels of {})",
                                          stats.mean.size(), stats.std.size(), d.channels,
                                          d.name));
  for (int c = 0; c < d.channels; ++c) {
    const double sd = stats.std[std::size_t(c)];
    if (!(sd > 0) || !std::isfinite(sd))
      throw DataError(d.name, fmt::format("channel {}: std {}, expected finite and > 0 (a "
                                          "constant channel cannot be normalized)", c, sd));
  }
  const std::size_t plane = std::size_t(d.height) * std::size_t(d.width);
  for (std::size_t i = 0; i < d.size(); ++i)
    for (int c = 0; c < d.channels; ++c) {
      const double mean = stats.mean[std::size_t(c)], inv = 1.0 / stats.std[std::size_t(c)];
      float* x = d.image(i) + std::size_t(c) * plane;
      for (std::size_t k = 0; k < plane; ++k) x[k] = float((x[k] - mean) * inv);
    }
}

Holdout split_holdout(const Dataset& d, std::size_t n_val, std::uint64_t seed) {
  if (n_val < 1 || n_val >= d.size())
    throw UsageError("n_val", fmt::format("{}, expected 1..{} ({} has {} examples)", n_val,
                                          d.size() == 0 ? 0 : d.size() - 1, d.name, d.size()));
  std::vector<std::uint32_t> p = shuffle(d.size(), seed, rng::Purpose::split, 0);
  // Original order within each part: the subsets depend on the seed, their order does not
  // (training order comes from epoch_permutation anyway).
  std::sort(p.begin(), p.begin() + std::ptrdiff_t(n_val));
  std::sort(p.begin() + std::ptrdiff_t(n_val), p.end());
  const std::span<const std::uint32_t> all(p);
  Holdout h{select(d, all.subspan(n_val), d.name + ":train-split"),
            select(d, all.first(n_val), d.name + ":val-split")};
  return h;
}

std::vector<std::uint32_t> epoch_permutation(std::size_t n, std::uint64_t seed,
                                             std::uint64_t epoch) {
  return shuffle(n, seed, rng::Purpose::data_order, epoch);
}

void augment_batch(const Dataset& d, std::span<const std::uint32_t> ids, std::uint64_t seed,
                   std::uint64_t step, std::span<float> out, int pad, const float* fill) {
  const std::size_t m = d.image_size();
  if (out.size() != ids.size() * m)
    throw UsageError("out", fmt::format("{} floats, expected {} images × {} = {}", out.size(),
                                        ids.size(), m, ids.size() * m));
  if (pad < 0 || pad > std::min(d.height, d.width))
    throw UsageError("pad", fmt::format("{}, expected 0..{} (≤ image side)", pad,
                                        std::min(d.height, d.width)));
  for (std::size_t k = 0; k < ids.size(); ++k) {
    if (ids[k] >= d.size())
      throw UsageError("ids", fmt::format("entry {} is {}, expected < {} (size of {})", k, ids[k],
                                          d.size(), d.name));
    augment_image(seed, step, ids[k], d.image(ids[k]), out.data() + k * m, d.channels, d.height,
                  d.width, pad, fill);
  }
}

}  // namespace wdlab::data

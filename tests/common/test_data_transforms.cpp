// Normalization, held-out split, epoch order and augmentation: each driven by the shared RNG and
// checked by identities (crop at the centre offset is the identity, flip twice is the identity)
// and by determinism and distribution properties.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <set>

#include "common/data/synthetic.hpp"
#include "common/data/transforms.hpp"
#include "common/errors.hpp"
#include "tests/common/data_test_util.hpp"

using namespace wdlab;
using namespace wdlab::data;
using namespace wdlab::test;

namespace {

// n examples of C×H×W whose pixels are distinct: value = i·1000 + c·100 + y·10 + x (+1 so that
// no real pixel is 0 and zero padding is visible).
Dataset ramp(std::size_t n, int C, int H, int W) {
  Dataset d;
  d.name = "ramp";
  d.channels = C;
  d.height = H;
  d.width = W;
  d.num_classes = 2;
  for (std::size_t i = 0; i < n; ++i) {
    d.labels.push_back(std::int32_t(i % 2));
    for (int c = 0; c < C; ++c)
      for (int y = 0; y < H; ++y)
        for (int x = 0; x < W; ++x) d.images.push_back(float(i * 1000 + c * 100 + y * 10 + x + 1));
  }
  return d;
}

// The example ids of a ramp subset, recovered from the first pixel.
std::vector<std::uint32_t> ids_of(const Dataset& d) {
  std::vector<std::uint32_t> ids;
  for (std::size_t i = 0; i < d.size(); ++i) ids.push_back(std::uint32_t(d.image(i)[0] - 1) / 1000);
  return ids;
}

bool is_permutation_of_iota(std::vector<std::uint32_t> p) {
  std::sort(p.begin(), p.end());
  for (std::size_t i = 0; i < p.size(); ++i)
    if (p[i] != i) return false;
  return true;
}

}  // namespace

TEST_CASE("normalize: channel stats are exact on a hand set, and 0/1 after normalizing") {
  Dataset d;
  d.name = "two-channel";
  d.channels = 2;
  d.height = 1;
  d.width = 2;
  d.num_classes = 1;
  // channel 0 values {1, 3, 5, 7}: mean 4, population std sqrt(5); channel 1 {10, 10, 14, 14}:
  // mean 12, std 2.
  d.images = {1, 3, 10, 10, 5, 7, 14, 14};
  d.labels = {0, 0};
  const ChannelStats s = channel_stats(d);
  CHECK(s.mean[0] == doctest::Approx(4.0));
  CHECK(s.std[0] == doctest::Approx(std::sqrt(5.0)));
  CHECK(s.mean[1] == doctest::Approx(12.0));
  CHECK(s.std[1] == doctest::Approx(2.0));
  normalize(d, s);
  CHECK(d.images[2] == doctest::Approx(-1.0));
  CHECK(d.images[6] == doctest::Approx(1.0));
  const ChannelStats after = channel_stats(d);
  for (int c = 0; c < 2; ++c) {
    CHECK(std::abs(after.mean[std::size_t(c)]) < 1e-7);
    CHECK(after.std[std::size_t(c)] == doctest::Approx(1.0));
  }
}

TEST_CASE("normalize: a constant channel and a channel-count mismatch are errors") {
  Dataset d = ramp(3, 2, 2, 2);
  ChannelStats s = channel_stats(d);
  s.std[1] = 0;
  CHECK_HAS(message_of<DataError>([&] { normalize(d, s); }), "ramp: channel 1: std 0");
  s.std.pop_back();
  CHECK_HAS(message_of<UsageError>([&] { normalize(d, s); }), "1 stds, expected 2");
}

TEST_CASE("split_holdout: sizes, disjoint and complete, deterministic per seed") {
  const Dataset d = ramp(200, 1, 2, 2);
  const Holdout a = split_holdout(d, 30, 7);
  CHECK(a.val.size() == 30);
  CHECK(a.train.size() == 170);
  CHECK(a.val.name == "ramp:val-split");
  const std::vector<std::uint32_t> va = ids_of(a.val), ta = ids_of(a.train);
  std::vector<std::uint32_t> all = va;
  all.insert(all.end(), ta.begin(), ta.end());
  CHECK(is_permutation_of_iota(all));
  CHECK(std::is_sorted(va.begin(), va.end()));
  CHECK(std::is_sorted(ta.begin(), ta.end()));
  // Labels travel with their images.
  for (std::size_t i = 0; i < a.val.size(); ++i) CHECK(a.val.labels[i] == std::int32_t(va[i] % 2));

  const Holdout again = split_holdout(d, 30, 7);
  CHECK(ids_of(again.val) == va);
  CHECK(content_hash(again.train) == content_hash(a.train));
  const Holdout other = split_holdout(d, 30, 8);
  CHECK(ids_of(other.val) != va);
  // Random, not the first or last 30.
  CHECK(va.back() >= 30);
  CHECK(va.front() < 170);
}

TEST_CASE("split_holdout: n_val must leave both parts non-empty") {
  const Dataset d = ramp(10, 1, 1, 1);
  CHECK_HAS(message_of<UsageError>([&] { split_holdout(d, 0, 1); }), "n_val: 0, expected 1..9");
  CHECK_HAS(message_of<UsageError>([&] { split_holdout(d, 10, 1); }), "n_val: 10, expected 1..9");
  CHECK(split_holdout(d, 9, 1).train.size() == 1);
}

TEST_CASE("epoch_permutation: a permutation, deterministic, different per epoch and seed") {
  const auto p = epoch_permutation(1000, 42, 3);
  CHECK(p.size() == 1000);
  CHECK(is_permutation_of_iota(p));
  CHECK(epoch_permutation(1000, 42, 3) == p);
  CHECK(epoch_permutation(1000, 42, 4) != p);
  CHECK(epoch_permutation(1000, 43, 3) != p);
  std::vector<std::uint32_t> iota(1000);
  std::iota(iota.begin(), iota.end(), 0u);
  CHECK(p != iota);
  CHECK(epoch_permutation(0, 1, 0).empty());
  CHECK(epoch_permutation(1, 1, 0) == std::vector<std::uint32_t>{0});
}

TEST_CASE("epoch_permutation: all 6 orders of 3 appear about equally often") {
  // A Fisher–Yates off by one (j in 0..i−1, Sattolo's algorithm) yields only the 2 cyclic
  // orders; a biased j skews the counts. 6000 draws: each count ~ Binomial(6000, 1/6),
  // mean 1000, sd ≈ 29; the band 850..1150 is > 5 sd wide.
  std::map<std::vector<std::uint32_t>, int> counts;
  for (std::uint64_t seed = 0; seed < 6000; ++seed) ++counts[epoch_permutation(3, seed, 0)];
  CHECK(counts.size() == 6);
  for (const auto& [perm, c] : counts) {
    CHECK(c > 850);
    CHECK(c < 1150);
  }
}

TEST_CASE("augment: crop at offset (pad, pad) without flip is the identity") {
  const Dataset d = ramp(1, 3, 5, 7);
  std::vector<float> out(d.image_size());
  crop_flip(d.image(0), out.data(), 3, 5, 7, 4, CropFlip{4, 4, Flip::none}, nullptr);
  CHECK(std::equal(out.begin(), out.end(), d.images.begin()));
}

TEST_CASE("augment: flip mirrors each row, and twice is the identity") {
  const Dataset d = ramp(1, 2, 3, 4);
  std::vector<float> once(d.image_size()), twice(d.image_size());
  const CropFlip f{4, 4, Flip::horizontal};
  crop_flip(d.image(0), once.data(), 2, 3, 4, 4, f, nullptr);
  // channel 1, row 2, column 0 ← column 3
  CHECK(once[1 * 12 + 2 * 4 + 0] == d.image(0)[1 * 12 + 2 * 4 + 3]);
  CHECK(!std::equal(once.begin(), once.end(), d.images.begin()));
  crop_flip(once.data(), twice.data(), 2, 3, 4, 4, f, nullptr);
  CHECK(std::equal(twice.begin(), twice.end(), d.images.begin()));
}

TEST_CASE("augment: pixels shifted in from outside the image are zero padding (or the fill)") {
  const int C = 2, H = 6, W = 6, pad = 4;
  const Dataset d = ramp(1, C, H, W);
  const float* in = d.image(0);
  std::vector<float> out(d.image_size());
  // Window at the top-left corner of the padded image: output (y, x) shows input (y−4, x−4).
  crop_flip(in, out.data(), C, H, W, pad, CropFlip{0, 0, Flip::none}, nullptr);
  for (int c = 0; c < C; ++c)
    for (int y = 0; y < H; ++y)
      for (int x = 0; x < W; ++x) {
        const float got = out[std::size_t(c * H * W + y * W + x)];
        if (y < pad || x < pad)
          CHECK(got == 0.0f);
        else
          CHECK(got == in[c * H * W + (y - pad) * W + (x - pad)]);
      }
  // Bottom-right window: output (0, 0) shows input (4, 4); the last row and column are padding.
  const float fill[2] = {-1.5f, 2.5f};
  crop_flip(in, out.data(), C, H, W, pad, CropFlip{8, 8, Flip::none}, fill);
  CHECK(out[0] == in[4 * W + 4]);
  CHECK(out[std::size_t(H * W - 1)] == -1.5f);
  CHECK(out[std::size_t(2 * H * W - 1)] == 2.5f);
  CHECK(out[std::size_t(H * W + 1)] == in[H * W + 4 * W + 5]);
}

TEST_CASE("augment: draws cover every offset and both flips, per (seed, step, index)") {
  std::set<std::pair<int, int>> offsets;
  int flips = 0;
  const int n = 4000;
  for (int i = 0; i < n; ++i) {
    const CropFlip cf = augment_draw(5, 17, std::uint64_t(i), 4);
    REQUIRE(cf.dy >= 0);
    REQUIRE(cf.dy <= 8);
    REQUIRE(cf.dx >= 0);
    REQUIRE(cf.dx <= 8);
    offsets.insert({cf.dy, cf.dx});
    flips += cf.flip == Flip::horizontal;
  }
  CHECK(offsets.size() == 81);
  CHECK(flips > n / 2 - 200);  // Binomial(4000, 1/2): sd ≈ 32
  CHECK(flips < n / 2 + 200);
  // A function of its arguments: same again, and step and seed both matter.
  int same = 0, diff_step = 0, diff_seed = 0;
  for (int i = 0; i < 100; ++i) {
    const CropFlip a = augment_draw(5, 17, std::uint64_t(i), 4);
    const CropFlip b = augment_draw(5, 17, std::uint64_t(i), 4);
    const CropFlip c = augment_draw(5, 18, std::uint64_t(i), 4);
    const CropFlip e = augment_draw(6, 17, std::uint64_t(i), 4);
    same += a.dy == b.dy && a.dx == b.dx && a.flip == b.flip;
    diff_step += a.dy != c.dy || a.dx != c.dx || a.flip != c.flip;
    diff_seed += a.dy != e.dy || a.dx != e.dx || a.flip != e.flip;
  }
  CHECK(same == 100);
  CHECK(diff_step > 80);
  CHECK(diff_seed > 80);
}

TEST_CASE("augment: augment_image is crop_flip of augment_draw, batches key on example id") {
  const Dataset d = ramp(5, 3, 8, 8);
  std::vector<float> a(d.image_size()), b(d.image_size());
  augment_image(9, 2, 3, d.image(3), a.data(), 3, 8, 8);
  crop_flip(d.image(3), b.data(), 3, 8, 8, 4, augment_draw(9, 2, 3, 4), nullptr);
  CHECK(a == b);

  const std::vector<std::uint32_t> ids{3, 0, 3};
  std::vector<float> batch(3 * d.image_size());
  augment_batch(d, ids, 9, 2, batch);
  CHECK(std::equal(a.begin(), a.end(), batch.begin()));
  CHECK(std::equal(a.begin(), a.end(), batch.begin() + std::ptrdiff_t(2 * d.image_size())));
  CHECK_HAS(message_of<UsageError>([&] { augment_batch(d, ids, 9, 2, a); }), "out:");
  const std::vector<std::uint32_t> bad{5};
  CHECK_HAS(message_of<UsageError>([&] { augment_batch(d, bad, 9, 2, a); }),
            "entry 0 is 5, expected < 5");
}

TEST_CASE("make_gaussian: shape, determinism, standard normal inputs, teacher labels") {
  const Dataset g = make_gaussian(4000, 8, 4, 11);
  CHECK(g.size() == 4000);
  CHECK(g.channels == 8);
  CHECK(g.height == 1);
  CHECK(g.width == 1);
  CHECK(g.num_classes == 4);
  CHECK(content_hash(make_gaussian(4000, 8, 4, 11)) == content_hash(g));
  CHECK(content_hash(make_gaussian(4000, 8, 4, 12)) != content_hash(g));
  const ChannelStats s = channel_stats(g);
  for (int j = 0; j < 8; ++j) {
    CHECK(std::abs(s.mean[std::size_t(j)]) < 0.08);  // sd of the mean ≈ 0.016
    CHECK(std::abs(s.std[std::size_t(j)] - 1.0) < 0.06);
  }
  std::vector<int> per_class(4, 0);
  for (std::int32_t y : g.labels) ++per_class[std::size_t(y)];
  for (int c : per_class) CHECK(c > 300);  // every class of a random teacher is hit

  // The teacher and each x_i depend only on (seed, i), not on n: a smaller set is a prefix.
  const Dataset h = make_gaussian(50, 8, 4, 11);
  CHECK(std::equal(h.labels.begin(), h.labels.end(), g.labels.begin()));
  CHECK(std::equal(h.images.begin(), h.images.end(), g.images.begin()));
  CHECK_HAS(message_of<UsageError>([] { make_gaussian(10, 3, 1, 0); }), "classes: 1");
}

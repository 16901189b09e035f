// The resident-data kernel bodies (cuda/kernels/gather.hpp) through the host launcher against
// the trainer's host batches (common/train/batching.hpp HostBatcher, data::augment_batch): the
// batch the trainer would build for epoch e, batch b (ids from epoch_permutation, Philox step =
// the global step) equals, byte for byte, what GatherImages/GatherLabels make from the whole set.
#include <doctest/doctest.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "common/data/transforms.hpp"
#include "common/philox.hpp"
#include "common/train/batching.hpp"
#include "cuda/kernels/augment.hpp"
#include "cuda/kernels/gather.hpp"
#include "cuda/kernels/host_launch.hpp"

using namespace wdlab;
using namespace wdlab::cuda::kernels;

namespace {

/// n examples of C×H×W, N(0,1) pixels (as if normalized), labels k mod classes.
data::Dataset random_set(int n, int C, int H, int W, int classes) {
  data::Dataset d;
  d.name = "gather-test";
  d.channels = C;
  d.height = H;
  d.width = W;
  d.num_classes = classes;
  d.images.resize(std::size_t(n) * d.image_size());
  for (std::size_t i = 0; i < d.images.size(); ++i)
    d.images[i] = float(rng::normal(21, rng::Purpose::theory, 0, i));
  for (int k = 0; k < n; ++k) d.labels.push_back((k * 7 + 3) % classes);
  d.validate();
  return d;
}

struct Gathered {
  std::vector<float> images;
  std::vector<std::int32_t> labels;
};

/// The device path's two kernels, run on the CPU.
Gathered gather_bodies(const data::Dataset& d, const std::vector<std::int64_t>& ids, const train::AugmentSpec& aug) {
  const Index N = Index(ids.size());
  Gathered g;
  g.images.assign(std::size_t(N) * d.image_size(), -1.0f);
  g.labels.assign(std::size_t(N), -1);
  launch_host(N * Index(d.image_size()),
              GatherImages{d.images.data(), g.images.data(), ids.data(), nullptr, aug.seed, aug.step, d.channels,
                           d.height, d.width, aug.pad,
                           aug.mode == train::Augment::on ? GatherMode::augment : GatherMode::copy});
  launch_host(N, GatherLabels{d.labels.data(), g.labels.data(), ids.data()});
  return g;
}

bool same_bytes(const std::vector<float>& a, std::span<const float> b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

}  // namespace

TEST_CASE("kernel gather with augmentation equals the trainer's host batch bit for bit - a wrong step or key fails") {
  const int n = 37, B = 8;
  const std::int64_t per_epoch = n / B;  // 4 whole batches, 5 examples sit out each epoch
  const std::uint64_t seed = 5;
  const data::Dataset d = random_set(n, 3, 8, 8, 4);
  train::HostBatcher host;
  int compared = 0, augmented_differs = 0;
  for (int epoch = 1; epoch <= 3; ++epoch) {
    const auto order = data::epoch_permutation(std::size_t(n), seed, std::uint64_t(epoch - 1));
    for (std::int64_t b : {std::int64_t(0), per_epoch - 1}) {
      const std::span<const std::uint32_t> ids32(order.data() + b * B, std::size_t(B));
      std::vector<std::int64_t> ids;
      train::widen_ids(ids32, ids);
      const std::int64_t iteration = (epoch - 1) * per_epoch + b;  // the trainer's global step
      const train::AugmentSpec aug{train::Augment::on, seed, std::uint64_t(iteration)};
      const train::HostBatch hb = host.fill(d, ids32, aug);
      const Gathered g = gather_bodies(d, ids, aug);
      CHECK(same_bytes(g.images, hb.images));
      CHECK(std::vector<std::int32_t>(hb.labels.begin(), hb.labels.end()) == g.labels);
      ++compared;

      // Negative controls, each must differ from the host batch:
      // the step of the same batch one epoch later (a per-epoch instead of a global step);
      const train::AugmentSpec later{train::Augment::on, seed, std::uint64_t(iteration + per_epoch)};
      CHECK_FALSE(same_bytes(gather_bodies(d, ids, later).images, hb.images));
      // the batch slot instead of the example id as the Philox index (AugmentCropFlip's
      // contract): gather the same examples, then augment keyed by 0..B-1;
      const Gathered plain = gather_bodies(d, ids, train::AugmentSpec{});
      std::vector<float> by_slot(plain.images.size());
      std::vector<std::int64_t> slots(static_cast<std::size_t>(B));
      for (int k = 0; k < B; ++k) slots[std::size_t(k)] = k;
      launch_host(Index(by_slot.size()), AugmentCropFlip{plain.images.data(), by_slot.data(), slots.data(), nullptr,
                                                         seed, aug.step, 3, 8, 8, 4});
      CHECK_FALSE(same_bytes(by_slot, hb.images));
      // and the augmentation did something (a crop/flip draw of all zeros for every example
      // would make the comparison above vacuous).
      augmented_differs += !same_bytes(plain.images, hb.images);
    }
  }
  CHECK(compared == 6);
  CHECK(augmented_differs == compared);
}

TEST_CASE("kernel gather without augmentation copies examples and labels as the host batch does") {
  const data::Dataset d = random_set(11, 1, 5, 7, 3);
  const std::vector<std::uint32_t> ids32{10, 0, 3, 3, 7};  // repeats allowed: evaluation order is free
  std::vector<std::int64_t> ids;
  train::widen_ids(ids32, ids);
  train::HostBatcher host;
  const train::HostBatch hb = host.fill(d, ids32, train::AugmentSpec{});
  const Gathered g = gather_bodies(d, ids, train::AugmentSpec{});
  CHECK(same_bytes(g.images, hb.images));
  CHECK(std::vector<std::int32_t>(hb.labels.begin(), hb.labels.end()) == g.labels);
  // Negative control: ids shifted by one example gather other images.
  std::vector<std::int64_t> shifted = ids;
  for (auto& i : shifted) i = (i + 1) % 11;
  CHECK_FALSE(same_bytes(gather_bodies(d, shifted, train::AugmentSpec{}).images, hb.images));
  // pad 0: the crop is the identity, only the flips remain; still the host path's, and some
  // example is mirrored (else this case would not test the flip's indexing).
  const train::AugmentSpec pad0{train::Augment::on, 9, 2, 0};
  const Gathered flipped = gather_bodies(d, ids, pad0);
  CHECK(same_bytes(flipped.images, host.fill(d, ids32, pad0).images));
  CHECK_FALSE(same_bytes(flipped.images, g.images));
}

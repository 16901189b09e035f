#include "common/train/batching.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "common/data/transforms.hpp"
#include "common/errors.hpp"

namespace wdlab::train {

std::string to_string(DataSplit s) {
  switch (s) {
    case DataSplit::train: return "train";
    case DataSplit::val: return "val";
    case DataSplit::test: return "test";
  }
  throw InternalError("to_string(DataSplit): unknown value " + std::to_string(int(s)));
}

HostBatch HostBatcher::fill(const data::Dataset& d, std::span<const std::uint32_t> ids, const AugmentSpec& aug) {
  const std::size_t sz = d.image_size();
  images_.resize(ids.size() * sz);
  labels_.resize(ids.size());
  if (aug.mode == Augment::on) {
    data::augment_batch(d, ids, aug.seed, aug.step, images_, aug.pad);
  } else {
    for (std::size_t i = 0; i < ids.size(); ++i)
      std::copy_n(d.image(ids[i]), sz, images_.begin() + std::ptrdiff_t(i * sz));
  }
  for (std::size_t i = 0; i < ids.size(); ++i) labels_[i] = d.labels[ids[i]];
  return HostBatch{images_, labels_, int(ids.size())};
}

DataView view_of(const data::Dataset& d) {
  return DataView{d.images, d.labels, d.channels, d.height, d.width, d.num_classes};
}

void widen_ids(std::span<const std::uint32_t> ids, std::vector<std::int64_t>& out) {
  out.assign(ids.begin(), ids.end());
}

void check_ids(const IdBatch& batch, std::int64_t n_examples) {
  if (batch.ids.empty()) throw UsageError("ids", fmt::format("empty batch of the {} set", to_string(batch.split)));
  for (std::size_t k = 0; k < batch.ids.size(); ++k)
    if (batch.ids[k] < 0 || batch.ids[k] >= n_examples)
      throw UsageError("ids", fmt::format("slot {} names example {}, the {} set has {}", k, batch.ids[k],
                                          to_string(batch.split), n_examples));
}

void check_view(DataSplit split, const DataView& v) {
  const std::string name = to_string(split) + " set";
  if (v.channels <= 0 || v.height <= 0 || v.width <= 0 || v.num_classes <= 0)
    throw DataError(name, fmt::format("shape {}×{}×{}, {} classes: expected all positive", v.channels, v.height,
                                      v.width, v.num_classes));
  if (std::int64_t(v.images.size()) != v.size() * v.image_size())
    throw DataError(name, fmt::format("{} image floats for {} examples of {}", v.images.size(), v.size(),
                                      v.image_size()));
  for (std::size_t i = 0; i < v.labels.size(); ++i)
    if (v.labels[i] < 0 || v.labels[i] >= v.num_classes)
      throw DataError(name, fmt::format("example {}: label {}, expected 0..{}", i, v.labels[i], v.num_classes - 1));
}

}  // namespace wdlab::train

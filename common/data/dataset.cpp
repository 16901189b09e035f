#include "common/data/dataset.hpp"

#include <bit>
#include <cstring>

#include <fmt/format.h>

#include "common/errors.hpp"
#include "common/hash.hpp"

namespace wdlab::data {

std::string to_string(Split s) {
  switch (s) {
    case Split::train: return "train";
    case Split::test: return "test";
  }
  throw InternalError("to_string(Split): unknown value " + std::to_string(int(s)));
}

std::string Dataset::describe() const {
  return fmt::format("{}×{}×{}×{}, {} classes", size(), channels, height, width, num_classes);
}

void Dataset::validate() const {
  if (channels <= 0 || height <= 0 || width <= 0)
    throw DataError(name, fmt::format("shape C×H×W = {}×{}×{}, expected all positive", channels,
                                      height, width));
  if (num_classes <= 0)
    throw DataError(name, fmt::format("num_classes {}, expected ≥ 1", num_classes));
  if (images.size() != size() * image_size())
    throw DataError(name, fmt::format("{} image floats, expected N·C·H·W = {}·{} = {}",
                                      images.size(), size(), image_size(), size() * image_size()));
  if (!coarse_labels.empty() && coarse_labels.size() != labels.size())
    throw DataError(name, fmt::format("{} coarse labels, expected 0 or {} (one per example)",
                                      coarse_labels.size(), labels.size()));
  for (std::size_t i = 0; i < labels.size(); ++i)
    if (labels[i] < 0 || labels[i] >= num_classes)
      throw DataError(name, fmt::format("example {}: label {}, expected 0..{}", i, labels[i],
                                        num_classes - 1));
}

std::uint64_t content_hash(const Dataset& d) {
  Fnv1a h;
  h.u64(d.size());
  h.u64(std::uint64_t(d.channels));
  h.u64(std::uint64_t(d.height));
  h.u64(std::uint64_t(d.width));
  h.u64(std::uint64_t(d.num_classes));
  for (float x : d.images) h.u32(std::bit_cast<std::uint32_t>(x));
  for (std::int32_t y : d.labels) h.u32(std::uint32_t(y));
  for (std::int32_t y : d.coarse_labels) h.u32(std::uint32_t(y));
  return h.value();
}

std::string content_hash_hex(const Dataset& d) { return fmt::format("{:016x}", content_hash(d)); }

Dataset select(const Dataset& d, std::span<const std::uint32_t> indices, std::string name) {
  Dataset out;
  out.name = std::move(name);
  out.source = d.source;
  out.channels = d.channels;
  out.height = d.height;
  out.width = d.width;
  out.num_classes = d.num_classes;
  const std::size_t m = d.image_size();
  out.images.resize(indices.size() * m);
  out.labels.resize(indices.size());
  if (!d.coarse_labels.empty()) out.coarse_labels.resize(indices.size());
  for (std::size_t k = 0; k < indices.size(); ++k) {
    const std::size_t i = indices[k];
    if (i >= d.size())
      throw UsageError("indices", fmt::format("entry {} is {}, expected < {} (size of {})", k, i,
                                              d.size(), d.name));
    std::memcpy(out.images.data() + k * m, d.image(i), m * sizeof(float));
    out.labels[k] = d.labels[i];
    if (!d.coarse_labels.empty()) out.coarse_labels[k] = d.coarse_labels[i];
  }
  return out;
}

}  // namespace wdlab::data

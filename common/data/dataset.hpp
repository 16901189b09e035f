#pragma once
// An image classification set in the layout every backend reads: N×C×H×W floats, row-major.
// Plain data: loaders fill it, transforms edit it, backends copy it. Backend-neutral (no Eigen).
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace wdlab::data {

/// Which half of a published data set a loader returns.
enum class Split { train, test };
std::string to_string(Split s);

struct Dataset {
  std::string name;    // e.g. "fashion-mnist/train"; names the set in errors and run metadata
  std::string source;  // where it came from (directory or generator), for run metadata only
  int channels = 0, height = 0, width = 0;  // C, H, W
  int num_classes = 0;                      // K; labels lie in 0..K-1
  /// N×C×H×W, row-major. Loaders store byte pixels as value/255 (in [0, 1]); normalization is a
  /// separate, explicit step (transforms.hpp) so the loaded content hash is stable.
  std::vector<float> images;
  std::vector<std::int32_t> labels;         // N, in 0..num_classes-1 (CIFAR-100: fine labels)
  std::vector<std::int32_t> coarse_labels;  // CIFAR-100 only (0..19), else empty

  std::size_t size() const { return labels.size(); }
  /// C·H·W, the floats of one example.
  std::size_t image_size() const {
    return std::size_t(channels) * std::size_t(height) * std::size_t(width);
  }
  const float* image(std::size_t i) const { return images.data() + i * image_size(); }
  float* image(std::size_t i) { return images.data() + i * image_size(); }
  /// "60000×1×28×28, 10 classes"
  std::string describe() const;
  /// Throws DataError (file = name) if the buffers disagree with the shape or a label is out of
  /// range; loaders and generators call it last, so a Dataset handed out is always consistent.
  void validate() const;
};

/// 64-bit FNV-1a (offset basis 0xcbf29ce484222325, prime 0x100000001b3) over, in order:
/// N, C, H, W, K as 8-byte little-endian integers; every image float's IEEE-754 bit pattern as
/// 4 little-endian bytes; every label, then every coarse label, as 4 little-endian bytes. The
/// name and source are not hashed: the hash identifies content, so a renamed copy of the same
/// files hashes the same, and any change to pixels, labels or shape changes it. Written to
/// meta.json so a run records exactly which data it saw. Not cryptographic.
std::uint64_t content_hash(const Dataset& d);
/// content_hash as 16 lower-case hex digits.
std::string content_hash_hex(const Dataset& d);

/// The examples `indices` of `d`, in that order, under the name `name`. Throws UsageError
/// ("indices") when an index is ≥ d.size().
Dataset select(const Dataset& d, std::span<const std::uint32_t> indices, std::string name);

}  // namespace wdlab::data

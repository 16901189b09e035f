#pragma once
// How the trainer turns example ids into what a backend consumes: host batches (gathered and
// augmented here, on the CPU) or, for a backend on DataPath::resident, the data set once
// (view_of) and per batch the ids and the augmentation (IdBatch). Both paths draw the same
// augmentation (data::augment_image keyed by seed, global step and example id), so the trainer's
// results do not depend on which one a backend takes.
#include <cstdint>
#include <span>
#include <vector>

#include "common/data/dataset.hpp"
#include "common/train/backend.hpp"

namespace wdlab::train {

/// The host path: gathers examples `ids` of a data set into contiguous buffers it owns.
class HostBatcher {
 public:
  /// images[k] = example ids[k], augmented by data::augment_batch(d, ids, aug.seed, aug.step,
  /// ..., aug.pad) when aug.mode is on; labels[k] = d.labels[ids[k]]. Valid until the next fill.
  HostBatch fill(const data::Dataset& d, std::span<const std::uint32_t> ids, const AugmentSpec& aug);
  /// The last batch's images, writable (the trainer's NaN-injection test hook).
  std::span<float> images() { return images_; }

 private:
  std::vector<float> images_;
  std::vector<std::int32_t> labels_;
};

/// The whole of `d` as set_resident_data takes it (no copy: valid while d is).
DataView view_of(const data::Dataset& d);

/// ids widened to the IdBatch element type.
void widen_ids(std::span<const std::uint32_t> ids, std::vector<std::int64_t>& out);

/// For backends: UsageError("ids") naming the slot unless every id lies in [0, n_examples) and
/// the batch is not empty.
void check_ids(const IdBatch& batch, std::int64_t n_examples);

/// For backends: DataError naming the set unless the view is consistent (sizes agree with the
/// shape, labels within 0..num_classes-1).
void check_view(DataSplit split, const DataView& v);

}  // namespace wdlab::train

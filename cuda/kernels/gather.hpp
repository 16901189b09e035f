#pragma once
// Batches from a data set resident on the device: slot n of the batch is example ids[n] of the
// whole set (N_set×C×H×W), copied or augmented on the way. The augmenting form is
// AugmentCropFlip's arithmetic (augment.hpp) with the source row found through ids, so a step's
// input comes from the resident set in one kernel, with the Philox draws of data::augment_image
// keyed by the example's id: bit for bit the host batch the trainer would have built (each value
// is a copied pixel or the fill value, nothing is computed on pixels).
#include <cstdint>

#include "common/data/augment.hpp"
#include "cuda/kernels/hd.hpp"

namespace wdlab::cuda::kernels {

enum class GatherMode : std::uint32_t { copy = 0, augment = 1 };

/// out[n,c,y,x] = set[ids[n], c, y, x] (copy), or
/// augment_image(seed, step, ids[n], set[ids[n]])[c,y,x] (augment: the crop window at
/// (dy, dx) of the image padded by `pad` with fill[c] (0 when null), mirrored when drawn).
/// Index space N·C·H·W (N = batch size), one output value per index.
struct GatherImages {
  const float* set;          // the resident set, N_set·C·H·W
  float* out;                // N·C·H·W
  const std::int64_t* ids;   // N example ids, each < N_set (checked on the host)
  const float* fill;         // C values, or null for 0
  std::uint64_t seed, step;
  Index C, H, W, pad;
  GatherMode mode;
  WDLAB_HD void operator()(Index i) const {
    const Index x = i % W, y = (i / W) % H, c = (i / (W * H)) % C, n = i / (W * H * C);
    const float* src = set + (ids[n] * C + c) * H * W;
    if (mode == GatherMode::copy) {
      out[i] = src[y * W + x];
      return;
    }
    const data::CropFlip cf = data::augment_draw(seed, step, std::uint64_t(ids[n]), int(pad));
    const Index sy = y + cf.dy - pad;
    const Index sx = (cf.flip == data::Flip::horizontal ? W - 1 - x : x) + cf.dx - pad;
    const float f = fill ? fill[c] : 0.0f;
    out[i] = (sy >= 0 && sy < H && sx >= 0 && sx < W) ? src[sy * W + sx] : f;
  }
};

/// out[n] = labels[ids[n]]. Index space N.
struct GatherLabels {
  const std::int32_t* labels;  // N_set
  std::int32_t* out;           // N
  const std::int64_t* ids;
  WDLAB_HD void operator()(Index n) const { out[n] = labels[ids[n]]; }
};

}  // namespace wdlab::cuda::kernels

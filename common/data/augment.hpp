#pragma once
// The standard CIFAR augmentation for one image: pad by `pad` (4), crop back to H×W at a random
// offset, then flip horizontally with probability 1/2. The draws come from the shared Philox RNG
// (Purpose::augment, step = global step, index = example id), so an example gets the same crop
// and flip at a given step on the CPU and on the GPU, whatever batch slot it lands in.
// Header-only and WDLAB_HD, with no std:: containers, so a CUDA kernel can run the same body.
#include <cstdint>

#include "common/philox.hpp"

namespace wdlab::data {

enum class Flip : std::uint32_t { none = 0, horizontal = 1 };

/// Where the crop window starts in the padded image (0..2·pad each) and whether to mirror.
struct CropFlip {
  int dy = 0, dx = 0;
  Flip flip = Flip::none;
};

/// The crop offsets and flip for (seed, step, index): one Philox block, word 0 → dy, word 1 →
/// dx (each uniform in 0..2·pad by multiply-shift), top bit of word 2 → flip.
WDLAB_HD inline CropFlip augment_draw(std::uint64_t seed, std::uint64_t step, std::uint64_t index,
                                      int pad) {
  const rng::Block b = rng::draw(seed, rng::Purpose::augment, step, index);
  const std::uint64_t range = std::uint64_t(2 * pad + 1);
  CropFlip cf;
  cf.dy = int((std::uint64_t(b.v[0]) * range) >> 32);
  cf.dx = int((std::uint64_t(b.v[1]) * range) >> 32);
  cf.flip = (b.v[2] >> 31) != 0u ? Flip::horizontal : Flip::none;
  return cf;
}

/// out[c,y,x] = P[c, y+dy, x'+dx] with x' = W−1−x when flipped, else x, where P is `in` (C×H×W)
/// padded by `pad` on every side with fill[c] (0 when fill is null). Crop then flip, as
/// torchvision's RandomCrop(padding) followed by RandomHorizontalFlip. `out` must not alias `in`.
/// Note: zero fill on normalized data pads with the mean; to pad with black as torchvision does
/// (pad before Normalize), pass fill[c] = −mean_c/std_c.
WDLAB_HD inline void crop_flip(const float* in, float* out, int C, int H, int W, int pad,
                               CropFlip cf, const float* fill) {
  for (int c = 0; c < C; ++c) {
    const float f = fill ? fill[c] : 0.0f;
    const float* src = in + std::int64_t(c) * H * W;
    float* dst = out + std::int64_t(c) * H * W;
    for (int y = 0; y < H; ++y) {
      const int sy = y + cf.dy - pad;
      float* row = dst + y * W;
      if (sy < 0 || sy >= H) {
        for (int x = 0; x < W; ++x) row[x] = f;
        continue;
      }
      const float* srow = src + sy * W;
      // Output column x reads source column x + dx − pad, mirrored after the crop when flipped.
      for (int x = 0; x < W; ++x) {
        const int cx = (cf.flip == Flip::horizontal ? W - 1 - x : x) + cf.dx - pad;
        row[x] = (cx >= 0 && cx < W) ? srow[cx] : f;
      }
    }
  }
}

/// One augmented image: crop_flip(in, out, ..., augment_draw(seed, step, index, pad), fill).
WDLAB_HD inline void augment_image(std::uint64_t seed, std::uint64_t step, std::uint64_t index,
                                   const float* in, float* out, int C, int H, int W, int pad = 4,
                                   const float* fill = nullptr) {
  crop_flip(in, out, C, H, W, pad, augment_draw(seed, step, index, pad), fill);
}

}  // namespace wdlab::data

#pragma once
// The CIFAR augmentation (pad, random crop, horizontal flip) as an elementwise body: every
// output pixel redraws its example's Philox block (data::augment_draw, 10 rounds, cheap on a
// GPU) instead of one thread copying a whole image, so the work spreads over N·C·H·W threads.
// Bit for bit the same as data::augment_image (common/data/augment.hpp): a pure copy or fill.
#include "common/data/augment.hpp"
#include "cuda/kernels/hd.hpp"

namespace wdlab::cuda::kernels {

/// out[n,c,y,x] = augment_image(seed, step, ids[n], in_n)[c,y,x]. Index space N·C·H·W.
struct AugmentCropFlip {
  const float* in;
  float* out;
  const std::int64_t* ids;  // example ids: the Philox index of each batch slot
  const float* fill;        // C values, or null for 0
  std::uint64_t seed, step;
  Index C, H, W, pad;
  WDLAB_HD void operator()(Index i) const {
    const Index x = i % W, y = (i / W) % H, c = (i / (W * H)) % C, n = i / (W * H * C);
    const data::CropFlip cf = data::augment_draw(seed, step, std::uint64_t(ids[n]), int(pad));
    const Index sy = y + cf.dy - pad;
    const Index cx = (cf.flip == data::Flip::horizontal ? W - 1 - x : x) + cf.dx - pad;
    const float f = fill ? fill[c] : 0.0f;
    out[i] = (sy >= 0 && sy < H && cx >= 0 && cx < W) ? in[((n * C + c) * H + sy) * W + cx] : f;
  }
};

}  // namespace wdlab::cuda::kernels

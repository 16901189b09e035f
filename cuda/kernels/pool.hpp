#pragma once
// Max-pooling kernel bodies (reference/ops/pool.hpp): NCHW, window×window at `stride`, no
// padding. The forward pass records, per output, the winner's offset within its example's
// C·H·W image (the reference's argmax row). The backward pass gathers per input element instead
// of scattering per output, so overlapping windows need no atomics and the sums run in the
// reference's order (outputs in increasing p, q).
#include "cuda/kernels/hd.hpp"

namespace wdlab::cuda::kernels {

struct PoolShape {
  Index C, H, W, P, Q, window, stride;
};

/// y[n,c,p,q] = max over the window; first maximum in (r, s) order wins, a NaN beats any number
/// (and not an earlier NaN). Index space N·C·P·Q.
struct MaxPoolForward {
  const float* x;
  float* y;
  std::int32_t* argmax;  // offset within the example: c·H·W + h·W + w
  PoolShape s;
  WDLAB_HD void operator()(Index o) const {
    const Index q = o % s.Q, p = (o / s.Q) % s.P, c = (o / (s.Q * s.P)) % s.C;
    const Index n = o / (s.Q * s.P * s.C);
    const float* xn = x + n * s.C * s.H * s.W;
    Index best_i = -1;
    float best = 0.0f;
    for (Index r = 0; r < s.window; ++r)
      for (Index t = 0; t < s.window; ++t) {
        const Index i = (c * s.H + p * s.stride + r) * s.W + q * s.stride + t;
        const float v = xn[i];
        if (best_i < 0 || v > best || (v != v && best == best)) {
          best_i = i;
          best = v;
        }
      }
    y[o] = best;
    argmax[o] = std::int32_t(best_i);
  }
};

/// dx[n,c,h,w] (=|+=) Σ dy[n,c,p,q] over the outputs whose winner is (c,h,w). Index N·C·H·W.
struct MaxPoolBackward {
  const float* dy;
  const std::int32_t* argmax;
  float* dx;
  PoolShape s;
  Accumulate mode;
  WDLAB_HD void operator()(Index i) const {
    const Index w = i % s.W, h = (i / s.W) % s.H, c = (i / (s.W * s.H)) % s.C;
    const Index n = i / (s.W * s.H * s.C);
    const Index local = (c * s.H + h) * s.W + w;
    // Outputs p with p·stride ≤ h < p·stride + window, i.e. ⌈(h − window + 1)/stride⌉ ≤ p ≤ h/stride.
    const Index p_lo = h - s.window + 1 <= 0 ? 0 : (h - s.window + 1 + s.stride - 1) / s.stride;
    const Index p_hi = h / s.stride < s.P - 1 ? h / s.stride : s.P - 1;
    const Index q_lo = w - s.window + 1 <= 0 ? 0 : (w - s.window + 1 + s.stride - 1) / s.stride;
    const Index q_hi = w / s.stride < s.Q - 1 ? w / s.stride : s.Q - 1;
    float sum = 0.0f;
    const Index base = (n * s.C + c) * s.P * s.Q;
    for (Index p = p_lo; p <= p_hi; ++p)
      for (Index q = q_lo; q <= q_hi; ++q) {
        const Index o = base + p * s.Q + q;
        if (argmax[o] == local) sum += dy[o];
      }
    store(mode, &dx[i], sum);
  }
};

}  // namespace wdlab::cuda::kernels

// Every body above, for the device launcher's instantiations (instantiate_layers.cu).
#define WDLAB_POOL_BODIES(X) \
  X(MaxPoolForward)          \
  X(MaxPoolBackward)

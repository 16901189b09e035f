#pragma once
// Elementwise kernel bodies: ReLU, tanh, bias add, residual join, cotangent accumulation, global
// average pooling. Layouts as the reference (reference/ops/*.hpp): activations NCHW, i.e. the
// reference's (C·H·W)×N column-per-example matrices; dense activations are N×K with K inner.
#include <cmath>

#include "cuda/kernels/hd.hpp"

namespace wdlab::cuda::kernels {

/// max(v, 0) with NaN kept (reference/ops/activation.hpp relu_fprop).
WDLAB_HD inline float relu_of(float v) { return (v > 0.0f || v != v) ? v : 0.0f; }

/// y = max(x, 0), NaN propagates (reference/ops/activation.hpp relu_fprop).
struct ReluForward {
  const float* x;
  float* y;
  WDLAB_HD void operator()(Index i) const { y[i] = relu_of(x[i]); }
};

/// dy ⊙ 1[x > 0] for one entry (relu_bprop; derivative 0 at x = 0, and at x = NaN). BN's
/// backward with the ReLU after it fused (BnReluPartialSums, BnBackward::relu_in) applies the same
/// function, so the fused and the two-kernel paths compute the same value per entry.
WDLAB_HD inline float relu_cotangent(float x, float dy) { return x > 0.0f ? dy : 0.0f; }

/// dx (=|+=) dy ⊙ 1[x > 0], from the input x (relu_bprop; derivative 0 at x = 0).
struct ReluBackward {
  const float* x;
  const float* dy;
  float* dx;
  Accumulate mode;
  WDLAB_HD void operator()(Index i) const { store(mode, &dx[i], relu_cotangent(x[i], dy[i])); }
};

/// y = tanh(x) (reference/ops/tanh.hpp tanh_fprop).
struct TanhForward {
  const float* x;
  float* y;
  WDLAB_HD void operator()(Index i) const { y[i] = tanhf(x[i]); }
};

/// dx (=|+=) dy ⊙ (1 − y²), from the output y (tanh_bprop).
struct TanhBackward {
  const float* y;
  const float* dy;
  float* dx;
  Accumulate mode;
  WDLAB_HD void operator()(Index i) const { store(mode, &dx[i], dy[i] * (1.0f - y[i] * y[i])); }
};

/// y[n,k,t] += b[k] over N·K·HW entries (conv: HW = P·Q; dense: HW = 1).
struct BiasAdd {
  const float* b;
  float* y;
  Index K, HW;
  WDLAB_HD void operator()(Index i) const { y[i] += b[(i / HW) % K]; }
};

/// y = a + b (reference/ops/residual.hpp residual_fprop).
struct ResidualAdd {
  const float* a;
  const float* b;
  float* y;
  WDLAB_HD void operator()(Index i) const { y[i] = a[i] + b[i]; }
};

/// dst (=|+=) src: passes a cotangent to a branch (residual, flatten).
struct AccumulateInto {
  const float* src;
  float* dst;
  Accumulate mode;
  WDLAB_HD void operator()(Index i) const { store(mode, &dst[i], src[i]); }
};

/// y[n,c] = (1/HW) Σ_t x[n,c,t]; index i = n·C + c (global_avgpool_fprop). Summed in float in
/// t order, then divided, as the reference's float instantiation does (colwise sum / HW).
struct GlobalAvgPoolForward {
  const float* x;
  float* y;
  Index HW;
  WDLAB_HD void operator()(Index i) const {
    const float* xi = x + i * HW;
    float s = 0.0f;
    for (Index t = 0; t < HW; ++t) s += xi[t];
    y[i] = s / float(HW);
  }
};

/// dx[n,c,t] (=|+=) dy[n,c]/HW (global_avgpool_bprop).
struct GlobalAvgPoolBackward {
  const float* dy;
  float* dx;
  Index HW;
  Accumulate mode;
  WDLAB_HD void operator()(Index i) const {
    store(mode, &dx[i], dy[i / HW] / float(HW));
  }
};

}  // namespace wdlab::cuda::kernels

// Every body above, for the device launcher's instantiations (instantiate_layers.cu): a body and
// its entry here are one edit, so a new layer's kernels need no other file.
#define WDLAB_ELEMENTWISE_BODIES(X) \
  X(ReluForward)                    \
  X(ReluBackward)                   \
  X(BiasAdd)                        \
  X(ResidualAdd)                    \
  X(AccumulateInto)                 \
  X(GlobalAvgPoolForward)           \
  X(GlobalAvgPoolBackward)          \
  X(TanhForward)                    \
  X(TanhBackward)

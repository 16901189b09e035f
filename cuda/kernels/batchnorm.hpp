#pragma once
// Batch normalization kernel bodies (reference/ops/batchnorm.hpp), NCHW, statistics per channel
// over the m = N·HW entries. Sums come from reduce.hpp (ChannelPartialSums + SumPartials) and
// are kept in double: mean[c], var[c] (biased), invstd[c] = 1/√(var[c] + ε).
#include <cmath>

#include "cuda/kernels/elementwise.hpp"
#include "cuda/kernels/hd.hpp"
#include "cuda/kernels/reduce.hpp"

namespace wdlab::cuda::kernels {

/// invstd[c] = 1/√(var[c] + ε). Index space C.
struct BnInvStd {
  const double* var;
  double* invstd;
  double eps;
  WDLAB_HD void operator()(Index c) const { invstd[c] = 1.0 / sqrt(var[c] + eps); }
};

/// Train mode: x̂ = (x − μ_c)·invstd_c; y = γ_c x̂ + β_c (gamma ≠ null) or y = x̂. xhat may be
/// null (no affine: y is x̂, and backward reads y). Index space N·C·HW.
struct BnNormalize {
  const float* x;
  const double* mean;
  const double* invstd;
  const float* gamma;  // null: no affine
  const float* beta;
  float* xhat;         // null: not stored separately
  float* y;
  Index C, HW;
  /// BN followed by a ReLU that reads only it (CudaBackend::forward fuses the two): relu(y) is
  /// written here too, in the same pass, and the ReLU layer launches nothing. y is still
  /// written: BN's backward reads it (x̂ without affine) and the crosscheck compares it.
  float* relu_out = nullptr;
  WDLAB_HD void operator()(Index i) const {
    const Index c = (i / HW) % C;
    const float xh = float((double(x[i]) - mean[c]) * invstd[c]);
    if (xhat) xhat[i] = xh;
    const float v = gamma ? gamma[c] * xh + beta[c] : xh;
    y[i] = v;
    if (relu_out) relu_out[i] = relu_of(v);
  }
};

/// Eval mode: y = γ (x − running_mean)/√(running_var + ε) + β, in float as the reference's
/// float instantiation (invstd = rsqrt(running_var + ε)). Index space N·C·HW.
struct BnEvalForward {
  const float* x;
  const float* running_mean;
  const float* running_var;
  const float* gamma;  // null: no affine
  const float* beta;
  float* y;
  Index C, HW;
  float eps;
  float* relu_out = nullptr;  // as BnNormalize's: the fused ReLU's output, or null
  WDLAB_HD void operator()(Index i) const {
    const Index c = (i / HW) % C;
    const float invstd = 1.0f / sqrtf(running_var[c] + eps);
    const float xh = (x[i] - running_mean[c]) * invstd;
    const float v = gamma ? gamma[c] * xh + beta[c] : xh;
    y[i] = v;
    if (relu_out) relu_out[i] = relu_of(v);
  }
};

/// running_mean ← m·running_mean + (1 − m)·μ, running_var ← m·running_var + (1 − m)·σ²·M/(M−1)
/// (unbiased batch variance, RunningVariance::unbiased, M = N·HW entries). Skipped when
/// *skip ≠ 0 (a non-finite loss: the reference returns before updating). Index space C.
struct BnRunningUpdate {
  const double* mean;
  const double* var;
  float* running_mean;
  float* running_var;
  const std::uint32_t* skip;
  float momentum;
  Index m;
  WDLAB_HD void operator()(Index c) const {
    if (skip && *skip) return;
    const float mu = float(mean[c]);
    const float vu = float(var[c]) * float(m) / float(m - 1);
    running_mean[c] = momentum * running_mean[c] + (1.0f - momentum) * mu;
    running_var[c] = momentum * running_var[c] + (1.0f - momentum) * vu;
  }
};

/// Train mode backward, with s₁ = Σ dy and s₂ = Σ dy ⊙ x̂ per channel:
///   dx (=|+=) γ·invstd·(dy − s₁/m − x̂·s₂/m)   (γ = 1 without affine). Index space N·C·HW.
struct BnBackward {
  const float* dy;
  const float* xhat;
  const double* invstd;
  const double* sum_dy;
  const double* sum_dy_xhat;
  const float* gamma;  // null: no affine
  float* dx;
  Index C, HW, m;
  Accumulate mode;
  /// BN followed by a ReLU that is the only reader of its output (CudaBackend::backward fuses
  /// the two): `dy` is then the ReLU's output cotangent dr and this is BN's output y, and BN's
  /// cotangent is read as relu_cotangent(y, dr), the value ReluBackward would have stored.
  const float* relu_in = nullptr;
  WDLAB_HD void operator()(Index i) const {
    const Index c = (i / HW) % C;
    const float g = relu_in ? relu_cotangent(relu_in[i], dy[i]) : dy[i];
    const double scale = (gamma ? double(gamma[c]) : 1.0) * invstd[c];
    const double v = scale * (double(g) - sum_dy[c] / double(m) -
                              double(xhat[i]) * (sum_dy_xhat[c] / double(m)));
    store(mode, &dx[i], float(v));
  }
};

/// BN's backward sums when the ReLU after it is fused (BnBackward::relu_in): with BN's
/// cotangent dŷ = relu_cotangent(y, dr), in one walk over lane k of channel c (ChannelLane)
///   partial[c·lanes + k]       = Σ dŷ
///   partial[(C + c)·lanes + k] = Σ dŷ ⊙ x̂
/// each in double, e ascending: the partials two ChannelPartialSums (value, product) give over
/// a stored dŷ, read from dr, y and x̂ once instead of dŷ twice and x̂ once after ReluBackward
/// wrote dŷ. SumPartials over 2C rows then gives Σdy[C], Σdy⊙x̂[C] as BnBackward reads them.
/// dyhat ≠ null (a capture: the crosscheck compares every layer's cotangent) also stores dŷ,
/// each entry once. xhat may equal y (no affine). Index space C·lanes; partial holds 2·C·lanes.
struct BnReluPartialSums {
  const float* dr;    // the ReLU's output cotangent
  const float* y;     // BN's output, the ReLU's input
  const float* xhat;  // x̂ (y itself without affine)
  float* dyhat;       // null: BN's cotangent is not stored
  double* partial;
  Index C, HW, m, lanes;  // m = N·HW
  WDLAB_HD void operator()(Index i) const {
    const Index c = i / lanes, k = i % lanes;
    ChannelLane lane(C, HW, lanes, c, k);
    double s1 = 0.0, s2 = 0.0;
    for (Index e = k; e < m; e += lanes, lane.next()) {
      const Index o = lane.offset();
      const float g = relu_cotangent(y[o], dr[o]);
      if (dyhat) dyhat[o] = g;
      const double v = double(g);
      s1 += v;
      s2 += v * double(xhat[o]);
    }
    partial[i] = s1;
    partial[C * lanes + i] = s2;
  }
};

}  // namespace wdlab::cuda::kernels

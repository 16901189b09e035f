#pragma once
// Loss kernel bodies (reference/ops/loss.hpp) and the random output-side vectors of K-FAC.
// Logits are N×K with K inner (the reference's K×N column-per-example matrix). Per-example
// losses go to double arrays; LossTotals sums them in example order.
#include <cmath>

#include "common/philox.hpp"
#include "cuda/kernels/hd.hpp"

namespace wdlab::cuda::kernels {

/// Per example n: lse = max z + log Σ_k exp(z_k − max z) (stable), loss[n] = lse − z_{y_n},
/// correct[n] = 1 if the first maximum is y_n, probs = exp(z − lse) (optional), and
/// dlogits (=|+=) (p − onehot(y))/N. Index space N.
struct SoftmaxCrossEntropy {
  const float* logits;
  const std::int32_t* labels;
  float* probs;      // null: not wanted
  float* dlogits;    // null: not wanted (evaluation)
  double* loss;      // N
  double* correct;   // N
  Index K, N;
  WDLAB_HD void operator()(Index n) const {
    const float* z = logits + n * K;
    Index arg = 0;  // first maximum: strict '>'
    for (Index k = 1; k < K; ++k)
      if (z[k] > z[arg]) arg = k;
    const float zmax = z[arg];
    float sum = 0.0f;
    for (Index k = 0; k < K; ++k) sum += expf(z[k] - zmax);
    const float lse = zmax + logf(sum);
    const Index y = labels[n];
    loss[n] = double(lse - z[y]);
    correct[n] = arg == y ? 1.0 : 0.0;
    for (Index k = 0; k < K; ++k) {
      const float p = expf(z[k] - lse);
      if (probs) probs[n * K + k] = p;
      if (dlogits) dlogits[n * K + k] = (p - (k == y ? 1.0f : 0.0f)) / float(N);
    }
  }
};

/// Per example n: loss[n] = ½‖f_n − t_n‖², dout = (f − t)/N (squared_error). Index space N.
struct SquaredError {
  const float* out;
  const float* target;
  float* dout;  // null: not wanted
  double* loss;
  Index K, N;
  WDLAB_HD void operator()(Index n) const {
    double s = 0.0;
    for (Index k = 0; k < K; ++k) {
      const float d = out[n * K + k] - target[n * K + k];
      s += double(d) * double(d);
      if (dout) dout[n * K + k] = d / float(N);
    }
    loss[n] = 0.5 * s;
  }
};

/// The per-step scalars read back by the host in one copy.
struct StepScalars {
  double loss_sum = 0;   // Σ_n loss[n]
  double correct = 0;    // Σ_n correct[n]
  double param_stats[3] = {0, 0, 0};  // after the step, over every tensor (running statistics
                                      // too): Σθ, Σθ² and the count of non-finite entries
  std::uint32_t skip = 0;  // 1 when loss_sum is not finite: the optimizer does not step
  std::uint32_t pad = 0;
};

/// Sums the per-example losses and hits in example order; sets skip when the sum is not finite.
/// correct may be null (squared error). Index space 1.
struct LossTotals {
  const double* loss;
  const double* correct;
  StepScalars* out;
  Index N;
  WDLAB_HD void operator()(Index) const {
    double l = 0.0, c = 0.0;
    for (Index n = 0; n < N; ++n) {
      l += loss[n];
      if (correct) c += correct[n];
    }
    out->loss_sum = l;
    out->correct = c;
    out->skip = is_finite(l) ? 0u : 1u;
  }
};

/// K-FAC-F cotangent at the logits (network.cpp kfac_statistics): p = softmax(z_n) (float, as
/// softmax_fprop), ŷ_n = min{y : u_n < Σ_{j≤y} p_j} (cumulated in double, K−1 if rounding leaves
/// u_n ≥ Σp), u_n = rng::uniform(seed, fisher_target, step, n) (sample_categorical_targets);
/// v_n = p − e_ŷ. targets may be null. Index space N.
struct FisherCotangent {
  const float* logits;
  float* v;
  std::int32_t* targets;
  Index K;
  std::uint64_t seed, step;
  WDLAB_HD void operator()(Index n) const {
    const float* z = logits + n * K;
    float zmax = z[0];
    for (Index k = 1; k < K; ++k) zmax = z[k] > zmax ? z[k] : zmax;
    float sum = 0.0f;
    for (Index k = 0; k < K; ++k) sum += expf(z[k] - zmax);
    float* vn = v + n * K;
    for (Index k = 0; k < K; ++k) vn[k] = expf(z[k] - zmax) / sum;
    const double u = rng::uniform(seed, rng::Purpose::fisher_target, step, std::uint64_t(n));
    Index cls = K - 1;
    double c = 0.0;
    for (Index k = 0; k < K; ++k) {
      c += double(vn[k]);
      if (u < c) {
        cls = k;
        break;
      }
    }
    if (targets) targets[n] = std::int32_t(cls);
    vn[cls] -= 1.0f;
  }
};

/// K-FAC-G probes (gaussian_probes): v[n·K + k] = √variance · rng::normal(seed, gn_probe, step,
/// n·K + k). Index space N·K.
struct GaussianProbes {
  float* v;
  double sd;  // √variance
  std::uint64_t seed, step;
  WDLAB_HD void operator()(Index i) const {
    v[i] = float(sd * rng::normal(seed, rng::Purpose::gn_probe, step, std::uint64_t(i)));
  }
};

}  // namespace wdlab::cuda::kernels

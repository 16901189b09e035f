#pragma once
// Kernel bodies of CudaBackend::measure and ::rescale_weights (reference/net/metrics.hpp):
// output-side cotangents for the exact and projected curvature passes, the eval-mode BN
// backward those passes need, segment dot products (deterministic two-level sums, as
// reduce.hpp), and in-place scaling. Logits and cotangents are N×K with K inner.
#include <cmath>

#include "common/philox.hpp"
#include "cuda/kernels/elementwise.hpp"
#include "cuda/kernels/hd.hpp"
#include "cuda/kernels/reduce.hpp"

namespace wdlab::cuda::kernels {

/// Column j of B_n = I (Gauss-Newton): v[n·K + k] = 1 if k = j else 0. Index space N·K.
struct OneHotCotangent {
  float* v;
  Index K, j;
  WDLAB_HD void operator()(Index i) const { v[i] = i % K == j ? 1.0f : 0.0f; }
};

/// Column j of the Fisher's B_n (B_n B_nᵀ = diag(p) − ppᵀ): v_n = √p_j (e_j − p), with
/// p = softmax(z_n) in float as softmax_fprop (exp(z − max z), then divided by its sum).
/// Index space N.
struct FisherColumnCotangent {
  const float* logits;
  float* v;
  Index K, j;
  WDLAB_HD void operator()(Index n) const {
    const float* z = logits + n * K;
    float zmax = z[0];
    for (Index k = 1; k < K; ++k) zmax = z[k] > zmax ? z[k] : zmax;
    float sum = 0.0f;
    for (Index k = 0; k < K; ++k) sum += expf(z[k] - zmax);
    const float r = sqrtf(expf(z[j] - zmax) / sum);
    float* vn = v + n * K;
    for (Index k = 0; k < K; ++k) vn[k] = -r * (expf(z[k] - zmax) / sum);
    vn[j] += r;
  }
};

enum class ProbeKind : std::uint32_t { rademacher = 0, gaussian = 1 };

/// Random projection m of jac_norm_est (jacobian_norm_estimates): v[n·K + k] from the shared
/// Philox, purpose jacobian_probe, step = rng_step·2³² + m, index n·K + k: ±1 (uniform < ½ → −1)
/// or a standard normal. Index space N·K.
struct JacobianProbe {
  float* v;
  std::uint64_t seed, step;
  ProbeKind kind;
  WDLAB_HD void operator()(Index i) const {
    const std::uint64_t idx = std::uint64_t(i);
    v[i] = kind == ProbeKind::rademacher
               ? (rng::uniform(seed, rng::Purpose::jacobian_probe, step, idx) < 0.5 ? -1.0f : 1.0f)
               : float(rng::normal(seed, rng::Purpose::jacobian_probe, step, idx));
  }
};

/// Batch-BN curvature passes: v_n ← s_n·v_n with s_n = ±1 from the shared Philox, purpose
/// curvature_sign, step, index n (uniform < ½ → −1), as ref::curvature_sign. Index space N.
struct SignColumns {
  float* v;
  Index K;
  std::uint64_t seed, step;
  WDLAB_HD void operator()(Index n) const {
    const float s = rng::uniform(seed, rng::Purpose::curvature_sign, step, std::uint64_t(n)) < 0.5 ? -1.0f : 1.0f;
    for (Index k = 0; k < K; ++k) v[n * K + k] *= s;
  }
};

/// Eval-mode BN backward (the statistics are constants): dx (=|+=) γ_c·invstd_c·dy with
/// invstd_c = 1/√(running_var_c + ε), in float as the reference's float instantiation
/// (γ = 1 without affine). Index space N·C·HW.
struct BnEvalBackward {
  const float* dy;
  const float* running_var;
  const float* gamma;  // null: no affine
  float* dx;
  Index C, HW;
  float eps;
  Accumulate mode;
  /// As BnBackward's: BN's output y when the ReLU after it is fused (dy is then the ReLU's
  /// output cotangent, BN's is relu_cotangent(y, dy)), or null.
  const float* relu_in = nullptr;
  WDLAB_HD void operator()(Index i) const {
    const Index c = (i / HW) % C;
    const float invstd = 1.0f / sqrtf(running_var[c] + eps);
    const float scale = (gamma ? gamma[c] : 1.0f) * invstd;
    store(mode, &dx[i], scale * (relu_in ? relu_cotangent(relu_in[i], dy[i]) : dy[i]));
  }
};

/// Segment dot products, level 1: segment s is a[s·len .. (s+1)·len) (and the same run of b);
/// partial[s·chunks + k] = Σ over chunk k of a·b, in double and in order. Unlike
/// FlatPartialStats a non-finite entry is not left out: it makes the sum non-finite, as a metric
/// of a network with a non-finite output should be. Sum the partials with SumPartials (rows = S).
/// Index space S·chunks.
struct SegmentPartialDots {
  const float* a;
  const float* b;
  double* partial;
  Index len, chunk;
  WDLAB_HD void operator()(Index i) const {
    const Index chunks = chunk_count(len, chunk);
    const Index s = i / chunks, k = i % chunks;
    const Index end = (k + 1) * chunk < len ? (k + 1) * chunk : len;
    const float* as = a + s * len;
    const float* bs = b + s * len;
    double t = 0.0;
    for (Index e = k * chunk; e < end; ++e) t += double(as[e]) * double(bs[e]);
    partial[i] = t;
  }
};

/// x ← c·x in float (wn-conv: W, b and running mean by c, running variance by c²). Index space n.
struct Scale {
  float* x;
  float c;
  WDLAB_HD void operator()(Index i) const { x[i] *= c; }
};

}  // namespace wdlab::cuda::kernels

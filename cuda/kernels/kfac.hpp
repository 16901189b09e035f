#pragma once
// K-FAC kernel bodies (reference/optim/kfac.cpp, MATH.md §9.3–9.5). Matrices are column-major
// with leading dimension = rows, like the reference's Eigen matrices, so a factor's bytes are its
// checkpoint tensor. A block's gradient matrix Ḡ = [dW db] is out × a (a = in + 1 with a bias)
// in the reference's compute layout; the backend keeps dW in PyTorch order (row-major out × in).
#include <cmath>

#include "cuda/kernels/hd.hpp"
#include "cuda/kernels/optim.hpp"

namespace wdlab::cuda::kernels {

/// ν = min(1, √(κ / (η²·Σ⟨g, U⟩))) when η²·Σ⟨g, U⟩ > 0, else 1 (KL clip, MATH.md §9.3 item 3).
WDLAB_HD inline double kl_clip_scale(double kappa, double lr, double inner) {
  const double denom = lr * lr * inner;
  if (!(kappa > 0 && lr > 0 && denom > 0)) return 1.0;
  const double nu = sqrt(kappa / denom);
  return nu < 1.0 ? nu : 1.0;
}

/// M[r, c] = M[c, r] for r < c: the upper triangle from the lower one that syrk/potri wrote.
/// Index space n·n; reads only the lower triangle, writes only the upper one (no race).
struct SymmetrizeLower {
  float* m;
  Index n;
  WDLAB_HD void operator()(Index i) const {
    const Index r = i % n, c = i / n;
    if (r < c) m[i] = m[c + n * r];
  }
};

/// M ← M + d·I. Index space n.
struct AddDiagonal {
  float* m;
  Index n;
  float d;
  WDLAB_HD void operator()(Index i) const { m[i * n + i] = m[i * n + i] + d; }
};

/// out[0] = Σᵢ M[i, i] (double, in order); out[1] = minᵢ M[i, i]², out[2] = maxᵢ M[i, i]²
/// (the Cholesky pivots when M = L). Index space 1.
struct DiagonalStats {
  const float* m;
  Index n;
  double* out;
  WDLAB_HD void operator()(Index) const {
    double trace = 0.0, lo = 0.0, hi = 0.0;
    for (Index i = 0; i < n; ++i) {
      const double d = double(m[i * n + i]);
      trace += d;
      const double p = double(m[i * n + i] * m[i * n + i]);  // float square, as Eigen's .square()
      if (i == 0 || !(p >= lo)) lo = p;
      if (i == 0 || !(p <= hi)) hi = p;
    }
    out[0] = trace;
    out[1] = lo;
    out[2] = hi;
  }
};

/// F ← keep·F + take·E (factor EMA: keep = ε, take = 1 − ε; data-pass mean: keep = 0, take =
/// 1/batches, where F is overwritten). Nothing happens when *reject ≠ 0 (the estimates hold a
/// non-finite entry, or the loss was not finite): the factors stay whole. Index space n².
struct FactorCombine {
  float* f;
  const float* e;
  float keep, take;
  const double* reject;  // may be null
  WDLAB_HD void operator()(Index i) const {
    if (reject && *reject != 0.0) return;
    f[i] = keep == 0.0f ? take * e[i] : keep * f[i] + take * e[i];
  }
};

/// Ḡ (out × a, column-major) from dW (PyTorch order, row-major out × in) and db:
/// Ḡ[o, j] = dW[o, j] for j < in, Ḡ[o, in] = db[o]. Index space out·a.
struct GatherBlockGradient {
  const float* dw;
  const float* db;  // null without a bias (a = in)
  float* g;
  Index out, in;
  WDLAB_HD void operator()(Index i) const {
    const Index o = i % out, j = i / out;
    g[i] = j < in ? dw[o * in + j] : db[o];
  }
};

/// U ← U/T split back into PyTorch order: uw[o, j] = U[o, j]/T, ub[o] = U[o, in]/T.
/// Index space out·a.
struct ScatterBlockUpdate {
  const float* u;
  float* uw;
  float* ub;  // null without a bias
  Index out, in;
  float locations;  // T (1: no division, as the reference divides only for T > 1)
  WDLAB_HD void operator()(Index i) const {
    const Index o = i % out, j = i / out;
    const float v = locations > 1.0f ? u[i] / locations : u[i];
    if (j < in) uw[o * in + j] = v;
    else ub[o] = v;
  }
};

/// g ← g + βθ (L2, before preconditioning). Index space n.
struct AddL2 {
  float* g;
  const float* theta;
  float beta;
  WDLAB_HD void operator()(Index i) const { g[i] = g[i] + beta * theta[i]; }
};

/// partial[c] = Σ_{i in chunk c} g[i]·u[i] in double (KL clip's ⟨g, U⟩). Index space
/// ⌈n/chunk⌉.
struct DotPartials {
  const float* g;
  const float* u;
  double* partial;
  Index n, chunk;
  WDLAB_HD void operator()(Index c) const {
    double s = 0.0;
    const Index end = (c + 1) * chunk < n ? (c + 1) * chunk : n;
    for (Index i = c * chunk; i < end; ++i) s += double(g[i]) * double(u[i]);
    partial[c] = s;
  }
};

/// *nu = kl_clip_scale(κ, η, Σ partial) (the sum in order). Index space 1.
struct KlClipScale {
  const double* partial;
  Index count;
  double kappa, lr;
  float* nu;
  WDLAB_HD void operator()(Index) const {
    double s = 0.0;
    for (Index c = 0; c < count; ++c) s += partial[c];
    *nu = float(kl_clip_scale(kappa, lr, s));
  }
};

/// U ← νU (when ν < 1); v ← μv + U; step = v (+ βθ under WD); θ ← θ − η·step. `nu` null: ν = 1;
/// `skip` as in optim.hpp. Index space n.
struct KfacUpdate {
  float* theta;
  const float* u;
  float* v;
  const float* nu;
  const std::uint32_t* skip;
  float lr, mu, beta;
  Decay decay;  // none or wd (L2 entered the gradient before preconditioning)
  WDLAB_HD void operator()(Index i) const {
    if (skip && *skip) return;
    const float th = theta[i];
    float ui = u[i];
    if (nu && *nu < 1.0f) ui = ui * *nu;
    const float vi = mu * v[i] + ui;
    v[i] = vi;
    float step = vi;
    if (decay == Decay::wd) step = step + beta * th;
    theta[i] = th - lr * step;
  }
};

/// V[r, c] ← V[r, c]·s[c] (eigenvectors scaled by the inverse clipped eigenvalues, so that
/// (V diag(s)) Vᵀ is the damped inverse). Index space n·n.
struct ScaleColumns {
  float* v;
  const float* s;
  Index n;
  WDLAB_HD void operator()(Index i) const { v[i] = v[i] * s[i / n]; }
};

/// y[i] = x[i] in double (a factor's spectrum in double, as the reference's damping_fraction).
/// Index space n.
struct ToDouble {
  const float* x;
  double* y;
  WDLAB_HD void operator()(Index i) const { y[i] = double(x[i]); }
};

}  // namespace wdlab::cuda::kernels

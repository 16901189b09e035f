// Reference batch normalization; the formulas are in reference/ops/batchnorm.hpp.
#include "reference/ops/batchnorm.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "common/cpu_runtime.hpp"
#include "common/errors.hpp"
#include "reference/ops/activation.hpp"
#include "reference/ops/thread_scratch.hpp"

namespace wdlab::ref {

std::string BatchNormGeometry::describe() const {
  return fmt::format("batchnorm N={} C={} HW={}", N, C, HW);
}

void BatchNormGeometry::validate() const {
  auto positive = [](const char* field, int v) {
    if (v < 1) throw UsageError(field, fmt::format("must be >= 1, got {}", v));
  };
  positive("bn.N", N);
  positive("bn.C", C);
  positive("bn.HW", HW);
}

template <class T>
Affine affine_of(const Vec<T>* gamma, const Vec<T>* beta) {
  WDLAB_CHECK((gamma == nullptr) == (beta == nullptr), "γ and β come together or not at all");
  return gamma ? Affine::on : Affine::off;
}

namespace {

/// The start of channel c's run of HW entries in column n of a (C·HW)×N matrix.
template <class T>
const T* run_ptr(const Mat<T>& a, int c, Eigen::Index HW, int n) {
  return a.data() + n * a.rows() + c * HW;
}

/// A sum over a run in a fixed order: eight running sums (lane j takes entries i ≡ j mod 8), the
/// leftover entries in a ninth, then a fixed tree. Unlike Eigen's sum, whose order follows the
/// pointer's alignment, the bits depend on the values only, so the fused and unfused backward
/// (dy in place, or the masked cotangent formed block by block) add identically. The lanes are
/// independent, so GCC vectorizes them without reassociating.
template <class T>
struct LaneSum {
  T acc[8] = {};
  T tail = T(0);
  /// Adds f(0), …, f(n − 1) as the next n entries of the run; every call but a run's last must
  /// add a multiple of 8 entries (the lanes then continue across calls).
  template <class F>
  void add(Eigen::Index n, F&& f) {
    Eigen::Index i = 0;
    for (; i + 8 <= n; i += 8)
      for (int j = 0; j < 8; ++j) acc[j] += f(i + j);
    for (; i < n; ++i) tail += f(i);
  }
  T total() const {
    return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail;
  }
};

/// Entries of the fused backward's masked cotangent formed at a time on the stack (a multiple of 8).
constexpr Eigen::Index kMaskBlock = 256;

template <class T>
void check_x(const BatchNormGeometry& g, const Mat<T>& x, const char* what) {
  g.validate();
  WDLAB_CHECK(x.rows() == g.rows() && x.cols() == g.N,
              fmt::format("{} is {}x{}, {} wants {}x{}", what, x.rows(), x.cols(), g.describe(),
                          g.rows(), g.N));
}

template <class T>
void check_channel_vec(const BatchNormGeometry& g, const Vec<T>* v, const char* what) {
  if (v)
    WDLAB_CHECK(v->size() == g.C, fmt::format("{} has {} entries, C = {}", what, v->size(), g.C));
}

/// y = γ x̂ + β per channel (or y = x̂).
template <class T>
void apply_affine(const BatchNormGeometry& g, const Mat<T>& xhat, BnVecIn<T> gamma, BnVecIn<T> beta,
                  Mat<T>& y) {
  if (!gamma) {
    y = xhat;
    return;
  }
  y.resize(xhat.rows(), xhat.cols());
  parallel_for(g.C, [&](int c, int) {
    const Eigen::Index r0 = Eigen::Index(c) * g.HW;
    y.middleRows(r0, g.HW) = (xhat.middleRows(r0, g.HW).array() * (*gamma)(c) + (*beta)(c)).matrix();
  });
}

}  // namespace

template <class T>
BatchNormContext<T> batchnorm_fprop_train(const BatchNormGeometry& geom, const Mat<T>& x,
                                          std::type_identity_t<T> eps, BnVecIn<T> gamma,
                                          BnVecIn<T> beta, Mat<T>& y) {
  BatchNormContext<T> ctx;
  batchnorm_fprop_train(geom, x, eps, gamma, beta, y, ctx);
  return ctx;
}

template <class T>
void batchnorm_fprop_train(const BatchNormGeometry& geom, const Mat<T>& x, std::type_identity_t<T> eps,
                           BnVecIn<T> gamma, BnVecIn<T> beta, Mat<T>& y, BatchNormContext<T>& ctx,
                           Mat<T>* relu_out) {
  check_x(geom, x, "x");
  check_channel_vec(geom, gamma, "γ");
  check_channel_vec(geom, beta, "β");
  WDLAB_CHECK(eps >= T(0), "ε must be non-negative");
  const int m = geom.count();
  if (m < 2)
    throw PreconditionError(
        fmt::format("{}: batch statistics need N·HW >= 2 entries per channel", geom.describe()));
  WDLAB_CHECK(&y != &x, "batchnorm: y must not alias x");
  ctx.geom = geom;
  ctx.mode = BnMode::train;
  ctx.affine = affine_of(gamma, beta);
  ctx.mean.resize(geom.C);
  ctx.var.resize(geom.C);
  ctx.var_unbiased.resize(geom.C);
  ctx.invstd.resize(geom.C);
  ctx.xhat.resize(x.rows(), x.cols());
  y.resize(x.rows(), x.cols());
  if (relu_out) {
    WDLAB_CHECK(relu_out != &x && relu_out != &y, "the ReLU's output must not alias x or y");
    relu_out->resize(x.rows(), x.cols());
  }
  const int C = geom.C, N = geom.N;
  const Eigen::Index HW = geom.HW;
  // Three walks over x, each example's column (contiguous, all channels) whole on one thread:
  // a channel's entries are spread over every column, and walking a channel at a time touched
  // 3·N pages per channel (measured: that forward took about 3× the time of these column walks,
  // perf shares of the BN convnet step).
  // Per-channel sums are per-column partials added in column order, so the bits do not depend
  // on the thread count.
  Eigen::Map<Mat<T>> part = thread_scratch<T, Scratch::bn_column_partials>(C, N);
  // Two passes: μ first, then the centred squares (no cancellation from E[x²] − μ²).
  parallel_for(N, [&](int n, int) {
    for (int c = 0; c < C; ++c) {
      const T* xs = run_ptr(x, c, HW, n);
      LaneSum<T> sum;
      sum.add(HW, [&](Eigen::Index i) { return xs[i]; });
      part(c, n) = sum.total();
    }
  });
  for (int c = 0; c < C; ++c) ctx.mean(c) = part.row(c).sum() / T(m);
  parallel_for(N, [&](int n, int) {
    for (int c = 0; c < C; ++c) {
      const T* xs = run_ptr(x, c, HW, n);
      const T mu = ctx.mean(c);
      LaneSum<T> sq;
      sq.add(HW, [&](Eigen::Index i) { return (xs[i] - mu) * (xs[i] - mu); });
      part(c, n) = sq.total();
    }
  });
  for (int c = 0; c < C; ++c) {
    const T var = part.row(c).sum() / T(m);
    ctx.var(c) = var;
    ctx.var_unbiased(c) = var * T(m) / T(m - 1);
    ctx.invstd(c) = T(1) / std::sqrt(var + eps);
  }
  // One walk writes x̂, y = γ x̂ + β (y = x̂ without γ/β) and, fused, relu(y).
  parallel_for(N, [&](int n, int) {
    for (int c = 0; c < C; ++c) {
      const Eigen::Index at = n * x.rows() + c * HW;
      const T* xs = x.data() + at;
      T* xh = ctx.xhat.data() + at;
      T* ys = y.data() + at;
      const T mu = ctx.mean(c), invstd = ctx.invstd(c);
      if (gamma) {
        const T g = (*gamma)(c), b = (*beta)(c);
        for (Eigen::Index i = 0; i < HW; ++i) {
          xh[i] = (xs[i] - mu) * invstd;
          ys[i] = xh[i] * g + b;
        }
      } else {
        for (Eigen::Index i = 0; i < HW; ++i) ys[i] = xh[i] = (xs[i] - mu) * invstd;
      }
      if (relu_out) {
        T* rs = relu_out->data() + at;
        // As relu_fprop: NaN passes through (v <= 0 is false for NaN).
        for (Eigen::Index i = 0; i < HW; ++i) rs[i] = ys[i] <= T(0) ? T(0) : ys[i];
      }
    }
  });
}

template <class T>
void batchnorm_update_running(Vec<T>& running_mean, Vec<T>& running_var,
                              const BatchNormContext<T>& ctx, std::type_identity_t<T> momentum,
                              RunningVariance which) {
  WDLAB_CHECK(ctx.mode == BnMode::train, "running statistics need a train-mode context");
  WDLAB_CHECK(running_mean.size() == ctx.geom.C && running_var.size() == ctx.geom.C,
              "running statistics must have C entries");
  WDLAB_CHECK(momentum >= T(0) && momentum <= T(1), "momentum must lie in [0, 1]");
  const Vec<T>& batch_var = which == RunningVariance::unbiased ? ctx.var_unbiased : ctx.var;
  running_mean = momentum * running_mean + (T(1) - momentum) * ctx.mean;
  running_var = momentum * running_var + (T(1) - momentum) * batch_var;
}

template <class T>
BatchNormContext<T> batchnorm_fprop_eval(const BatchNormGeometry& geom, const Mat<T>& x,
                                         const Vec<T>& running_mean, const Vec<T>& running_var,
                                         std::type_identity_t<T> eps, BnVecIn<T> gamma,
                                         BnVecIn<T> beta, Mat<T>& y) {
  check_x(geom, x, "x");
  check_channel_vec(geom, &running_mean, "running_mean");
  check_channel_vec(geom, &running_var, "running_var");
  check_channel_vec(geom, gamma, "γ");
  check_channel_vec(geom, beta, "β");
  WDLAB_CHECK(eps >= T(0), "ε must be non-negative");
  WDLAB_CHECK((running_var.array() + eps > T(0)).all(), "running_var + ε must be positive");
  BatchNormContext<T> ctx;
  ctx.geom = geom;
  ctx.mode = BnMode::eval;
  ctx.affine = affine_of(gamma, beta);
  ctx.mean = running_mean;
  ctx.var = running_var;
  ctx.invstd = (running_var.array() + eps).rsqrt().matrix();
  ctx.xhat.resize(x.rows(), x.cols());
  for (int c = 0; c < geom.C; ++c) {
    const Eigen::Index r0 = Eigen::Index(c) * geom.HW;
    ctx.xhat.middleRows(r0, geom.HW) =
        ((x.middleRows(r0, geom.HW).array() - ctx.mean(c)) * ctx.invstd(c)).matrix();
  }
  apply_affine(geom, ctx.xhat, gamma, beta, y);
  return ctx;
}

template <class T>
void batchnorm_bprop(const BatchNormGeometry& geom, const BatchNormContext<T>& ctx,
                     const Mat<T>& dy, BnVecIn<T> gamma, Mat<T>& dx, BnVecOut<T> dgamma,
                     BnVecOut<T> dbeta, const Mat<T>* relu_out) {
  check_x(geom, dy, "dy");
  WDLAB_CHECK(geom.N == ctx.geom.N && geom.C == ctx.geom.C && geom.HW == ctx.geom.HW,
              "geometry differs from the forward pass");
  WDLAB_CHECK((gamma != nullptr) == (ctx.affine == Affine::on),
              "γ must be passed iff the forward pass was affine");
  WDLAB_CHECK((dgamma == nullptr && dbeta == nullptr) || ctx.affine == Affine::on,
              "dγ/dβ requested for a forward pass without γ/β");
  check_channel_vec(geom, gamma, "γ");
  if (relu_out)
    WDLAB_CHECK(relu_out->rows() == dy.rows() && relu_out->cols() == dy.cols(),
                "the ReLU's output and dy shapes differ");
  const T m = T(geom.count());
  dx.resize(dy.rows(), dy.cols());
  if (dgamma) dgamma->resize(geom.C);
  if (dbeta) dbeta->resize(geom.C);
  const int C = geom.C, N = geom.N;
  const Eigen::Index HW = geom.HW;
  // Column walks as in the forward pass; the sums are per-column partials added in column order.
  // BN's cotangent: dy, or with the ReLU fused dz = dy ⊙ 1[relu(y) > 0] (relu_masked, the rule
  // relu_bprop applies), formed kMaskBlock entries at a time on the stack.
  const bool fused = relu_out != nullptr;
  // Rows 2c, 2c+1: Σdz, Σdz⊙x̂ of channel c.
  Eigen::Map<Mat<T>> part = thread_scratch<T, Scratch::bn_column_partials>(2 * C, N);
  parallel_for(N, [&](int n, int) {
    T buf[kMaskBlock];
    for (int c = 0; c < C; ++c) {
      const T* g = run_ptr(dy, c, HW, n);
      const T* xh = run_ptr(ctx.xhat, c, HW, n);
      LaneSum<T> s, sx;
      if (fused) {
        const T* r = run_ptr(*relu_out, c, HW, n);
        for (Eigen::Index i0 = 0; i0 < HW; i0 += kMaskBlock) {
          const Eigen::Index len = std::min(kMaskBlock, HW - i0);
          for (Eigen::Index i = 0; i < len; ++i) buf[i] = relu_masked(r[i0 + i], g[i0 + i]);
          s.add(len, [&](Eigen::Index i) { return buf[i]; });
          sx.add(len, [&](Eigen::Index i) { return buf[i] * xh[i0 + i]; });
        }
      } else {
        s.add(HW, [&](Eigen::Index i) { return g[i]; });
        sx.add(HW, [&](Eigen::Index i) { return g[i] * xh[i]; });
      }
      part(2 * c, n) = s.total();
      part(2 * c + 1, n) = sx.total();
    }
  });
  Vec<T> scale(C), mean_dy(C), mean_dy_xhat(C);
  for (int c = 0; c < C; ++c) {
    const T sum_dy = part.row(2 * c).sum(), sum_dy_xhat = part.row(2 * c + 1).sum();
    if (dgamma) (*dgamma)(c) = sum_dy_xhat;
    if (dbeta) (*dbeta)(c) = sum_dy;
    scale(c) = (gamma ? (*gamma)(c) : T(1)) * ctx.invstd(c);
    // eval: the statistics are constants, dx = γ·invstd·dy.
    const bool train = ctx.mode == BnMode::train;
    mean_dy(c) = train ? sum_dy / m : T(0);
    mean_dy_xhat(c) = train ? sum_dy_xhat / m : T(0);
  }
  parallel_for(N, [&](int n, int) {
    for (int c = 0; c < C; ++c) {
      const T* g = run_ptr(dy, c, HW, n);
      const T* r = fused ? run_ptr(*relu_out, c, HW, n) : g;
      const T* xh = run_ptr(ctx.xhat, c, HW, n);
      T* d = dx.data() + n * dx.rows() + c * HW;
      const T sc = scale(c), md = mean_dy(c), mdx = mean_dy_xhat(c);
      if (fused) {
        for (Eigen::Index i = 0; i < HW; ++i) d[i] = sc * (relu_masked(r[i], g[i]) - md - xh[i] * mdx);
      } else {
        for (Eigen::Index i = 0; i < HW; ++i) d[i] = sc * (g[i] - md - xh[i] * mdx);
      }
    }
  });
}

#define WDLAB_INSTANTIATE(T)                                                                       \
  template Affine affine_of<T>(const Vec<T>*, const Vec<T>*);                                      \
  template BatchNormContext<T> batchnorm_fprop_train<T>(const BatchNormGeometry&, const Mat<T>&,   \
                                                        T, const Vec<T>*, const Vec<T>*, Mat<T>&); \
  template void batchnorm_fprop_train<T>(const BatchNormGeometry&, const Mat<T>&, T, const Vec<T>*,  \
                                         const Vec<T>*, Mat<T>&, BatchNormContext<T>&, Mat<T>*);           \
  template void batchnorm_update_running<T>(Vec<T>&, Vec<T>&, const BatchNormContext<T>&, T,       \
                                            RunningVariance);                                      \
  template BatchNormContext<T> batchnorm_fprop_eval<T>(const BatchNormGeometry&, const Mat<T>&,    \
                                                       const Vec<T>&, const Vec<T>&, T,            \
                                                       const Vec<T>*, const Vec<T>*, Mat<T>&);     \
  template void batchnorm_bprop<T>(const BatchNormGeometry&, const BatchNormContext<T>&,           \
                                   const Mat<T>&, const Vec<T>*, Mat<T>&, Vec<T>*, Vec<T>*,     \
                                   const Mat<T>*);
WDLAB_INSTANTIATE(double)
WDLAB_INSTANTIATE(float)
#undef WDLAB_INSTANTIATE

}  // namespace wdlab::ref

// Reference batch normalization; the formulas are in reference/ops/batchnorm.hpp.
#include "reference/ops/batchnorm.hpp"

#include <fmt/format.h>

#include <cmath>

#include "common/cpu_runtime.hpp"
#include "common/errors.hpp"

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
                           BnVecIn<T> gamma, BnVecIn<T> beta, Mat<T>& y, BatchNormContext<T>& ctx) {
  check_x(geom, x, "x");
  check_channel_vec(geom, gamma, "γ");
  check_channel_vec(geom, beta, "β");
  WDLAB_CHECK(eps >= T(0), "ε must be non-negative");
  const int m = geom.count();
  if (m < 2)
    throw PreconditionError(
        fmt::format("{}: batch statistics need N·HW >= 2 entries per channel", geom.describe()));
  ctx.geom = geom;
  ctx.mode = BnMode::train;
  ctx.affine = affine_of(gamma, beta);
  ctx.mean.resize(geom.C);
  ctx.var.resize(geom.C);
  ctx.var_unbiased.resize(geom.C);
  ctx.invstd.resize(geom.C);
  ctx.xhat.resize(x.rows(), x.cols());
  // Channels are independent: each runs whole on one thread (results independent of the count).
  parallel_for(geom.C, [&](int c, int) {
    const auto xc = x.middleRows(Eigen::Index(c) * geom.HW, geom.HW);
    // Two passes: μ first, then the centred squares (no cancellation from E[x²] − μ²).
    const T mu = xc.sum() / T(m);
    auto xhat_c = ctx.xhat.middleRows(Eigen::Index(c) * geom.HW, geom.HW);
    xhat_c = (xc.array() - mu).matrix();
    const T var = xhat_c.squaredNorm() / T(m);
    const T invstd = T(1) / std::sqrt(var + eps);
    xhat_c *= invstd;
    ctx.mean(c) = mu;
    ctx.var(c) = var;
    ctx.var_unbiased(c) = var * T(m) / T(m - 1);
    ctx.invstd(c) = invstd;
  });
  apply_affine(geom, ctx.xhat, gamma, beta, y);
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
                     BnVecOut<T> dbeta) {
  check_x(geom, dy, "dy");
  WDLAB_CHECK(geom.N == ctx.geom.N && geom.C == ctx.geom.C && geom.HW == ctx.geom.HW,
              "geometry differs from the forward pass");
  WDLAB_CHECK((gamma != nullptr) == (ctx.affine == Affine::on),
              "γ must be passed iff the forward pass was affine");
  WDLAB_CHECK((dgamma == nullptr && dbeta == nullptr) || ctx.affine == Affine::on,
              "dγ/dβ requested for a forward pass without γ/β");
  check_channel_vec(geom, gamma, "γ");
  const T m = T(geom.count());
  dx.resize(dy.rows(), dy.cols());
  if (dgamma) dgamma->resize(geom.C);
  if (dbeta) dbeta->resize(geom.C);
  parallel_for(geom.C, [&](int c, int) {  // channels are independent
    const Eigen::Index r0 = Eigen::Index(c) * geom.HW;
    const auto dyc = dy.middleRows(r0, geom.HW);
    const auto xhc = ctx.xhat.middleRows(r0, geom.HW);
    const T sum_dy = dyc.sum();
    const T sum_dy_xhat = (dyc.array() * xhc.array()).sum();
    if (dgamma) (*dgamma)(c) = sum_dy_xhat;
    if (dbeta) (*dbeta)(c) = sum_dy;
    const T scale = (gamma ? (*gamma)(c) : T(1)) * ctx.invstd(c);
    auto dxc = dx.middleRows(r0, geom.HW);
    if (ctx.mode == BnMode::train) {
      dxc = (scale * (dyc.array() - sum_dy / m - xhc.array() * (sum_dy_xhat / m))).matrix();
    } else {
      dxc = scale * dyc;
    }
  });
}

#define WDLAB_INSTANTIATE(T)                                                                       \
  template Affine affine_of<T>(const Vec<T>*, const Vec<T>*);                                      \
  template BatchNormContext<T> batchnorm_fprop_train<T>(const BatchNormGeometry&, const Mat<T>&,   \
                                                        T, const Vec<T>*, const Vec<T>*, Mat<T>&); \
  template void batchnorm_fprop_train<T>(const BatchNormGeometry&, const Mat<T>&, T, const Vec<T>*,  \
                                         const Vec<T>*, Mat<T>&, BatchNormContext<T>&);           \
  template void batchnorm_update_running<T>(Vec<T>&, Vec<T>&, const BatchNormContext<T>&, T,       \
                                            RunningVariance);                                      \
  template BatchNormContext<T> batchnorm_fprop_eval<T>(const BatchNormGeometry&, const Mat<T>&,    \
                                                       const Vec<T>&, const Vec<T>&, T,            \
                                                       const Vec<T>*, const Vec<T>*, Mat<T>&);     \
  template void batchnorm_bprop<T>(const BatchNormGeometry&, const BatchNormContext<T>&,           \
                                   const Mat<T>&, const Vec<T>*, Mat<T>&, Vec<T>*, Vec<T>*);
WDLAB_INSTANTIATE(double)
WDLAB_INSTANTIATE(float)
#undef WDLAB_INSTANTIATE

}  // namespace wdlab::ref

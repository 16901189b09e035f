// Reference batch normalization: train/eval gradients by central differences, the normalization
// identities, hand-computed running statistics, float against double, and the checked misuses.
#include <fmt/format.h>

#include "common/errors.hpp"
#include "ops_test_util.hpp"
#include "reference/ops/activation.hpp"
#include "reference/ops/batchnorm.hpp"

using namespace wdlab;
using namespace wdlab::ref;
using namespace wdlab::ref::testing;

namespace {

const char* name(Affine a) { return a == Affine::on ? "affine" : "plain"; }

struct BnCase {
  BatchNormGeometry geom;
  Affine affine;
  double eps;
  std::string describe() const {
    return fmt::format("{} {} eps={}", geom.describe(), name(affine), eps);
  }
};

std::vector<BnCase> train_cases() {
  std::vector<BnCase> out;
  for (int HW : {1, 4})
    for (Affine a : {Affine::off, Affine::on})
      for (double eps : {0.0, kBnEps}) out.push_back({{.N = 5, .C = 3, .HW = HW}, a, eps});
  return out;
}

/// γ (away from 0) and β for C channels.
Vec<double> gamma_of(int C) { return normal_vec(C, 11, 0.5, 1.0); }
Vec<double> beta_of(int C) { return normal_vec(C, 12, 1.0); }

/// Channel c of x shifted by c and scaled by 1 + c: statistics differ between channels.
Mat<double> input_of(const BatchNormGeometry& g, std::uint64_t stream) {
  Mat<double> x = normal_mat(g.rows(), g.N, stream);
  for (int c = 0; c < g.C; ++c)
    x.middleRows(c * g.HW, g.HW) = (x.middleRows(c * g.HW, g.HW).array() * (1 + c) + c).matrix();
  return x;
}

}  // namespace

TEST_CASE("batchnorm train: dx, dγ, dβ match central differences (HW = 1 and > 1, ±affine)") {
  for (const auto& tc : train_cases()) {
    const auto& g = tc.geom;
    const Mat<double> x = input_of(g, 1);
    const Mat<double> dy = normal_mat(g.rows(), g.N, 2);
    const Vec<double> gamma = gamma_of(g.C), beta = beta_of(g.C);
    const bool aff = tc.affine == Affine::on;
    const Vec<double>* gp = aff ? &gamma : nullptr;
    const Vec<double>* bp = aff ? &beta : nullptr;

    Mat<double> y, dx;
    Vec<double> dgamma, dbeta;
    const auto ctx = batchnorm_fprop_train(g, x, tc.eps, gp, bp, y);
    CHECK(ctx.affine == tc.affine);
    batchnorm_bprop(g, ctx, dy, gp, dx, aff ? &dgamma : nullptr, aff ? &dbeta : nullptr);

    auto L = [&](const Mat<double>& xx, const Vec<double>* gg, const Vec<double>* bb) {
      Mat<double> yy;
      batchnorm_fprop_train(g, xx, tc.eps, gg, bb, yy);
      return dot(dy, yy);
    };
    const Mat<double> fdx =
        fd_gradient<Mat<double>>([&](const Mat<double>& xx) { return L(xx, gp, bp); }, x);
    WDLAB_EXPECT_PASS(compare("bn train dx " + tc.describe(), span_of(dx), span_of(fdx),
                              tol::Kind::finite_difference));
    if (aff) {
      const Vec<double> fdg =
          fd_gradient<Vec<double>>([&](const Vec<double>& gg) { return L(x, &gg, &beta); }, gamma);
      const Vec<double> fdb =
          fd_gradient<Vec<double>>([&](const Vec<double>& bb) { return L(x, &gamma, &bb); }, beta);
      WDLAB_EXPECT_PASS(compare("bn train dγ " + tc.describe(), span_of(dgamma), span_of(fdg),
                                tol::Kind::finite_difference));
      WDLAB_EXPECT_PASS(compare("bn train dβ " + tc.describe(), span_of(dbeta), span_of(fdb),
                                tol::Kind::finite_difference));
    }
  }
}

TEST_CASE("batchnorm train: negative control, dropping the batch-statistics terms fails FD") {
  const BatchNormGeometry g{.N = 5, .C = 3, .HW = 4};
  const Mat<double> x = input_of(g, 1), dy = normal_mat(g.rows(), g.N, 2);
  Mat<double> y;
  const auto ctx = batchnorm_fprop_train(g, x, kBnEps, nullptr, nullptr, y);
  Mat<double> naive(x.rows(), x.cols());  // dx = invstd·dy: treats μ, σ as constants
  for (int c = 0; c < g.C; ++c)
    naive.middleRows(c * g.HW, g.HW) = ctx.invstd(c) * dy.middleRows(c * g.HW, g.HW);
  const Mat<double> fdx = fd_gradient<Mat<double>>(
      [&](const Mat<double>& xx) {
        Mat<double> yy;
        batchnorm_fprop_train(g, xx, kBnEps, nullptr, nullptr, yy);
        return dot(dy, yy);
      },
      x);
  const auto c = compare("bn naive dx (must FAIL) " + g.describe(), span_of(naive), span_of(fdx),
                         tol::Kind::finite_difference);
  MESSAGE(c.line());
  CHECK_FALSE(c.pass);
}

TEST_CASE("batchnorm train, eps = 0: per-channel mean 0, biased variance 1 (affine: β, γ²)") {
  for (int HW : {1, 6})
    for (Affine a : {Affine::off, Affine::on}) {
      const BatchNormGeometry g{.N = 7, .C = 4, .HW = HW};
      const Mat<double> x = input_of(g, 3);
      const Vec<double> gamma = gamma_of(g.C), beta = beta_of(g.C);
      const bool aff = a == Affine::on;
      Mat<double> y;
      batchnorm_fprop_train(g, x, 0.0, aff ? &gamma : nullptr, aff ? &beta : nullptr, y);
      Vec<double> mean(g.C), var(g.C);
      for (int c = 0; c < g.C; ++c) {
        const Mat<double> yc = y.middleRows(c * g.HW, g.HW);
        mean(c) = yc.mean();
        var(c) = (yc.array() - mean(c)).square().mean();
      }
      const Vec<double> want_mean = aff ? beta : Vec<double>::Zero(g.C);
      const Vec<double> want_var =
          aff ? Vec<double>(gamma.array().square()) : Vec<double>::Ones(g.C);
      const std::string d = fmt::format("{} {}", g.describe(), name(a));
      WDLAB_EXPECT_PASS(compare("bn channel mean " + d, span_of(mean), span_of(want_mean),
                                tol::Kind::exact_double));
      WDLAB_EXPECT_PASS(compare("bn channel biased var " + d, span_of(var), span_of(want_var),
                                tol::Kind::exact_double));
    }
}

TEST_CASE("batchnorm running statistics after one update equal hand-computed values") {
  // Channel 0 entries {1, 2, 3, 6}: μ = 3, Σ(x−μ)² = 4+1+0+9 = 14, σ²_B = 14/4, unbiased 14/3.
  // Channel 1 entries {−1, −1, 1, 1}: μ = 0, Σ(x−μ)² = 4, σ²_B = 1, unbiased 4/3.
  // N = 2, HW = 2: column n holds (c0h0, c0h1, c1h0, c1h1).
  const BatchNormGeometry g{.N = 2, .C = 2, .HW = 2};
  Mat<double> x(4, 2);
  x << 1, 3,  //
      2, 6,   //
      -1, 1,  //
      -1, 1;
  Mat<double> y;
  const auto ctx = batchnorm_fprop_train(g, x, kBnEps, nullptr, nullptr, y);
  const double mom = kBnMomentum;
  const Vec<double> rm0 = (Vec<double>(2) << 0.5, -2.0).finished();
  const Vec<double> rv0 = (Vec<double>(2) << 1.0, 4.0).finished();
  const Vec<double> want_mean =
      (Vec<double>(2) << mom * 0.5 + (1 - mom) * 3.0, mom * -2.0 + (1 - mom) * 0.0).finished();
  for (RunningVariance which : {RunningVariance::unbiased, RunningVariance::biased}) {
    const bool unb = which == RunningVariance::unbiased;
    const Vec<double> batch_var =
        (Vec<double>(2) << (unb ? 14.0 / 3 : 14.0 / 4), (unb ? 4.0 / 3 : 1.0)).finished();
    const Vec<double> want_var = mom * rv0 + (1 - mom) * batch_var;
    Vec<double> rm = rm0, rv = rv0;
    batchnorm_update_running(rm, rv, ctx, mom, which);
    const char* w = unb ? "unbiased" : "biased";
    WDLAB_EXPECT_PASS(compare(fmt::format("bn running_mean ({})", w), span_of(rm),
                              span_of(want_mean), tol::Kind::exact_double));
    WDLAB_EXPECT_PASS(compare(fmt::format("bn running_var ({})", w), span_of(rv), span_of(want_var),
                              tol::Kind::exact_double));
  }
  // The default is the PyTorch-compatible unbiased variance.
  Vec<double> rm = rm0, rv = rv0, rm_u = rm0, rv_u = rv0;
  batchnorm_update_running(rm, rv, ctx, mom);
  batchnorm_update_running(rm_u, rv_u, ctx, mom, RunningVariance::unbiased);
  WDLAB_EXPECT_PASS(compare("bn running_var default == unbiased", span_of(rv), span_of(rv_u),
                            tol::Kind::exact_double));
}

TEST_CASE("batchnorm eval: affine-linear in x, equals the formula, gradients by FD") {
  for (int HW : {1, 4})
    for (Affine a : {Affine::off, Affine::on}) {
      const BatchNormGeometry g{.N = 3, .C = 3, .HW = HW};
      const bool aff = a == Affine::on;
      const Vec<double> gamma = gamma_of(g.C), beta = beta_of(g.C);
      const Vec<double>* gp = aff ? &gamma : nullptr;
      const Vec<double>* bp = aff ? &beta : nullptr;
      const Vec<double> rm = normal_vec(g.C, 21), rv = normal_vec(g.C, 22).array().square() + 0.5;
      const Mat<double> x1 = input_of(g, 23), x2 = input_of(g, 24),
                        dy = normal_mat(g.rows(), g.N, 25);
      const std::string d = fmt::format("{} {}", g.describe(), name(a));

      Mat<double> y1, y2, y12, dx;
      const auto ctx = batchnorm_fprop_eval(g, x1, rm, rv, kBnEps, gp, bp, y1);
      CHECK(ctx.mode == BnMode::eval);
      batchnorm_fprop_eval(g, x2, rm, rv, kBnEps, gp, bp, y2);
      const double t = 0.3;  // y(t x1 + (1−t) x2) = t y(x1) + (1−t) y(x2) for an affine map
      batchnorm_fprop_eval(g, Mat<double>(t * x1 + (1 - t) * x2), rm, rv, kBnEps, gp, bp, y12);
      const Mat<double> comb = t * y1 + (1 - t) * y2;
      WDLAB_EXPECT_PASS(compare("bn eval affine combination " + d, span_of(y12), span_of(comb),
                                tol::Kind::exact_double));

      Mat<double> want(x1.rows(), x1.cols());  // entry by entry from the formula
      for (int n = 0; n < g.N; ++n)
        for (int c = 0; c < g.C; ++c)
          for (int s = 0; s < g.HW; ++s) {
            const double xh = (x1(c * g.HW + s, n) - rm(c)) / std::sqrt(rv(c) + kBnEps);
            want(c * g.HW + s, n) = aff ? gamma(c) * xh + beta(c) : xh;
          }
      WDLAB_EXPECT_PASS(
          compare("bn eval formula " + d, span_of(y1), span_of(want), tol::Kind::exact_double));

      Vec<double> dgamma, dbeta;
      batchnorm_bprop(g, ctx, dy, gp, dx, aff ? &dgamma : nullptr, aff ? &dbeta : nullptr);
      auto L = [&](const Mat<double>& xx, const Vec<double>* gg, const Vec<double>* bb) {
        Mat<double> yy;
        batchnorm_fprop_eval(g, xx, rm, rv, kBnEps, gg, bb, yy);
        return dot(dy, yy);
      };
      const Mat<double> fdx =
          fd_gradient<Mat<double>>([&](const Mat<double>& xx) { return L(xx, gp, bp); }, x1);
      WDLAB_EXPECT_PASS(
          compare("bn eval dx " + d, span_of(dx), span_of(fdx), tol::Kind::finite_difference));
      if (aff) {
        const Vec<double> fdg = fd_gradient<Vec<double>>(
            [&](const Vec<double>& gg) { return L(x1, &gg, &beta); }, gamma);
        const Vec<double> fdb = fd_gradient<Vec<double>>(
            [&](const Vec<double>& bb) { return L(x1, &gamma, &bb); }, beta);
        WDLAB_EXPECT_PASS(compare("bn eval dγ " + d, span_of(dgamma), span_of(fdg),
                                  tol::Kind::finite_difference));
        WDLAB_EXPECT_PASS(
            compare("bn eval dβ " + d, span_of(dbeta), span_of(fdb), tol::Kind::finite_difference));
      }
    }
}

TEST_CASE("batchnorm float vs double: train forward/backward and eval forward") {
  for (Affine a : {Affine::off, Affine::on}) {
    const BatchNormGeometry g{.N = 16, .C = 4, .HW = 9};
    const bool aff = a == Affine::on;
    const Vec<double> gamma = gamma_of(g.C), beta = beta_of(g.C);
    const Vec<float> gammaf = gamma.cast<float>(), betaf = beta.cast<float>();
    const Mat<double> x = input_of(g, 31), dy = normal_mat(g.rows(), g.N, 32);
    const Mat<float> xf = cast<float>(x), dyf = cast<float>(dy);
    const std::string d = fmt::format("{} {}", g.describe(), name(a));

    Mat<double> y, dx;
    Mat<float> yf, dxf;
    const auto ctx =
        batchnorm_fprop_train(g, x, kBnEps, aff ? &gamma : nullptr, aff ? &beta : nullptr, y);
    const auto ctxf = batchnorm_fprop_train(g, xf, float(kBnEps), aff ? &gammaf : nullptr,
                                            aff ? &betaf : nullptr, yf);
    batchnorm_bprop(g, ctx, dy, aff ? &gamma : nullptr, dx, nullptr, nullptr);
    batchnorm_bprop(g, ctxf, dyf, aff ? &gammaf : nullptr, dxf, nullptr, nullptr);
    WDLAB_EXPECT_PASS(compare("bn train y float " + d, span_of(to_double(yf)), span_of(y),
                              tol::Kind::float_forward));
    WDLAB_EXPECT_PASS(compare("bn train dx float " + d, span_of(to_double(dxf)), span_of(dx),
                              tol::Kind::float_forward));

    Vec<double> rm = Vec<double>::Zero(g.C), rv = Vec<double>::Ones(g.C);
    batchnorm_update_running(rm, rv, ctx, kBnMomentum);
    Vec<float> rmf = Vec<float>::Zero(g.C), rvf = Vec<float>::Ones(g.C);
    batchnorm_update_running(rmf, rvf, ctxf, float(kBnMomentum));
    WDLAB_EXPECT_PASS(compare("bn running_var float " + d, span_of(to_double(rvf)), span_of(rv),
                              tol::Kind::float_forward));
    Mat<double> ye;
    Mat<float> yef;
    batchnorm_fprop_eval(g, x, rm, rv, kBnEps, aff ? &gamma : nullptr, aff ? &beta : nullptr, ye);
    batchnorm_fprop_eval(g, xf, rmf, rvf, float(kBnEps), aff ? &gammaf : nullptr,
                         aff ? &betaf : nullptr, yef);
    WDLAB_EXPECT_PASS(compare("bn eval y float " + d, span_of(to_double(yef)), span_of(ye),
                              tol::Kind::float_forward));
  }
}

TEST_CASE("batchnorm misuse is refused") {
  const BatchNormGeometry g{.N = 4, .C = 2, .HW = 1};
  const Mat<double> x = input_of(g, 41);
  const Vec<double> gamma = gamma_of(g.C), beta = beta_of(g.C);
  const Vec<double>* none = nullptr;
  Mat<double> y, dx;
  CHECK_THROWS_AS(BatchNormGeometry({.N = 0, .C = 2, .HW = 1}).validate(), UsageError);
  CHECK_THROWS_AS(batchnorm_fprop_train(g, x, kBnEps, &gamma, none, y), InternalError);
  CHECK_THROWS_AS(batchnorm_fprop_train(BatchNormGeometry{.N = 1, .C = 2, .HW = 1},
                                        Mat<double>(x.leftCols(1)), kBnEps, none, none, y),
                  PreconditionError);
  CHECK_THROWS_AS(
      batchnorm_fprop_train(BatchNormGeometry{.N = 2, .C = 2, .HW = 1}, x, kBnEps, none, none, y),
      InternalError);  // x has 4 columns
  const auto ctx = batchnorm_fprop_train(g, x, kBnEps, none, none, y);
  Vec<double> dgamma;
  CHECK_THROWS_AS(batchnorm_bprop(g, ctx, x, &gamma, dx, nullptr, nullptr), InternalError);
  CHECK_THROWS_AS(batchnorm_bprop(g, ctx, x, none, dx, &dgamma, nullptr), InternalError);
  Vec<double> rm = Vec<double>::Zero(g.C), rv = Vec<double>::Ones(g.C);
  const auto ectx = batchnorm_fprop_eval(g, x, rm, rv, kBnEps, none, none, y);
  CHECK_THROWS_AS(batchnorm_update_running(rm, rv, ectx, kBnMomentum), InternalError);
}

namespace {

/// relu(y) computed the unfused way.
template <class T>
Mat<T> relu_of(const Mat<T>& y) {
  Mat<T> r;
  relu_fprop(y, r);
  return r;
}

/// Exactly representable in double, so a 0-tolerance comparison of floats is bitwise.
template <class T>
std::vector<double> flat(const Mat<T>& m) {
  return std::vector<double>(m.data(), m.data() + m.size());
}

/// The fused ReLU against relu_fprop/relu_bprop around BN, 0 tolerance: forward (train) and
/// backward (train and eval contexts), ±affine, runs of HW that cross the 256-entry blocks of
/// the backward walks.
template <class T>
void check_fused_relu(const BatchNormGeometry& g, Affine a) {
  const bool aff = a == Affine::on;
  const Vec<T> gamma = gamma_of(g.C).cast<T>(), beta = beta_of(g.C).cast<T>();
  const Mat<T> x = input_of(g, 41).cast<T>(), dr = normal_mat(g.rows(), g.N, 42).cast<T>();
  const std::string d = fmt::format("{} {} {}", g.describe(), name(a), sizeof(T) == 4 ? "float" : "double");
  Mat<T> y, r, y2, dz, dx, dx_fused;
  BatchNormContext<T> ctx, ctx2;  // unfused, fused
  batchnorm_fprop_train(g, x, T(kBnEps), aff ? &gamma : nullptr, aff ? &beta : nullptr, y, ctx);
  batchnorm_fprop_train(g, x, T(kBnEps), aff ? &gamma : nullptr, aff ? &beta : nullptr, y2, ctx2, &r);
  const Mat<T> r_unfused = relu_of(y);
  INFO(d);
  CHECK(y2 == y);
  CHECK(ctx2.xhat == ctx.xhat);
  CHECK(r == r_unfused);
  const auto masked = (r.array() <= T(0)).count();
  CHECK(masked > 0);  // the mask has work to do
  CHECK(masked < r.size());
  Mat<T> ye;
  const BatchNormContext<T> eval = batchnorm_fprop_eval(g, x, ctx.mean, ctx.var, T(kBnEps), aff ? &gamma : nullptr,
                                                        aff ? &beta : nullptr, ye);
  for (const BatchNormContext<T>* c : {static_cast<const BatchNormContext<T>*>(&ctx), &eval}) {
    Vec<T> dg, db, dg2, db2;
    relu_bprop(y, dr, dz);
    batchnorm_bprop(g, *c, dz, aff ? &gamma : nullptr, dx, aff ? &dg : nullptr, aff ? &db : nullptr);
    batchnorm_bprop(g, *c, dr, aff ? &gamma : nullptr, dx_fused, aff ? &dg2 : nullptr, aff ? &db2 : nullptr, &r);
    const std::string mode = c->mode == BnMode::train ? "train" : "eval";
    const auto cmp = compare("bn+relu fused dx " + mode + " " + d, flat(dx_fused), flat(dx), tol::Kind::exact_integer);
    MESSAGE(cmp.line());
    CHECK(cmp.pass);
    if (aff) {
      CHECK(dg2 == dg);
      CHECK(db2 == db);
    }
  }
}

}  // namespace

TEST_CASE("batchnorm with the ReLU fused: the same bits as relu_fprop/relu_bprop around it") {
  for (const BatchNormGeometry& g : {BatchNormGeometry{.N = 5, .C = 3, .HW = 1},
                                     BatchNormGeometry{.N = 4, .C = 2, .HW = 300},
                                     BatchNormGeometry{.N = 3, .C = 3, .HW = 512}})
    for (Affine a : {Affine::off, Affine::on}) {
      check_fused_relu<float>(g, a);
      check_fused_relu<double>(g, a);
    }
}

TEST_CASE("batchnorm with the ReLU fused, negative control: a mask that lets everything through differs") {
  const BatchNormGeometry g{.N = 4, .C = 2, .HW = 300};
  const Mat<double> x = input_of(g, 41), dr = normal_mat(g.rows(), g.N, 42);
  Mat<double> y, dz, dx, dx_fused;
  const auto ctx = batchnorm_fprop_train(g, x, kBnEps, nullptr, nullptr, y);
  relu_bprop(y, dr, dz);
  batchnorm_bprop(g, ctx, dz, nullptr, dx, nullptr, nullptr);
  const Mat<double> all_on = Mat<double>::Ones(g.rows(), g.N);  // relu(y) > 0 everywhere
  batchnorm_bprop(g, ctx, dr, nullptr, dx_fused, nullptr, nullptr, &all_on);
  const auto cmp = compare("bn+relu fused dx, mask dropped", flat(dx_fused), flat(dx), tol::Kind::exact_integer);
  MESSAGE(cmp.line());
  CHECK_FALSE(cmp.pass);
}

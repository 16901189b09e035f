// Reference pooling: max-pool gradients by central differences on tie-free inputs (margin
// asserted), the documented tie rule, overlap accumulation, NaN propagation; global average pool.
#include <fmt/format.h>

#include <limits>

#include "common/errors.hpp"
#include "common/philox.hpp"
#include "ops_test_util.hpp"
#include "reference/ops/pool.hpp"

using namespace wdlab;
using namespace wdlab::ref;
using namespace wdlab::ref::testing;

namespace {

std::vector<Pool2dGeometry> pool_cases() {
  return {
      {.N = 2, .C = 3, .H = 6, .W = 6, .window = 2, .stride = 2},  // VGG's 2×2/2
      {.N = 2, .C = 2, .H = 7, .W = 5, .window = 3, .stride = 2},  // overlapping, ragged edge
      {.N = 1, .C = 2, .H = 5, .W = 4, .window = 3, .stride = 1},  // heavy overlap
  };
}

/// Smallest gap between a window's maximum and its runner-up, over all windows.
double min_window_gap(const Pool2dGeometry& g, const Mat<double>& x) {
  double gap = std::numeric_limits<double>::infinity();
  for (int n = 0; n < g.N; ++n)
    for (int c = 0; c < g.C; ++c)
      for (int p = 0; p < g.P(); ++p)
        for (int q = 0; q < g.Q(); ++q) {
          std::vector<double> v;
          for (int r = 0; r < g.window; ++r)
            for (int s = 0; s < g.window; ++s)
              v.push_back(x((c * g.H + p * g.stride + r) * g.W + q * g.stride + s, n));
          std::sort(v.rbegin(), v.rend());
          gap = std::min(gap, v[0] - v[1]);
        }
  return gap;
}

}  // namespace

TEST_CASE("maxpool: dx matches central differences on inputs without near-ties") {
  for (const auto& g : pool_cases()) {
    const Eigen::Index rows = Eigen::Index(g.C) * g.H * g.W;
    const Mat<double> x = distinct_mat(rows, g.N, 51, 0.01);
    // FD moves one entry by h ≈ 1e-5; a window's winner cannot change while gap > 2h.
    const double gap = min_window_gap(g, x);
    const double h_max = fd_step(x.cwiseAbs().maxCoeff());
    MESSAGE(fmt::format("{}: min window gap {:.3g}, FD step ≤ {:.3g}", g.describe(), gap, h_max));
    REQUIRE(gap > 100 * h_max);
    const Mat<double> dy = normal_mat(Eigen::Index(g.C) * g.P() * g.Q(), g.N, 52);
    Mat<double> y, dx;
    const auto ctx = maxpool2d_fprop(g, x, y);
    maxpool2d_bprop(g, ctx, dy, dx);
    const Mat<double> fdx = fd_gradient<Mat<double>>(
        [&](const Mat<double>& xx) {
          Mat<double> yy;
          maxpool2d_fprop(g, xx, yy);
          return dot(dy, yy);
        },
        x);
    WDLAB_EXPECT_PASS(compare("maxpool dx " + g.describe(), span_of(dx), span_of(fdx),
                              tol::Kind::finite_difference));
  }
}

TEST_CASE("maxpool ties: the first maximum in row-major window order wins and gets the gradient") {
  // 1×1×4×4, 2×2 windows at stride 2. Row index = h·4 + w.
  //   window (0,0): all four equal             → (0,0) = row 0
  //   window (0,1): tie (0,3) and (1,2)        → (0,3) = row 3 (r = 0 comes first)
  //   window (1,0): tie (2,1) and (3,0)        → (2,1) = row 9
  //   window (1,1): tie (3,2) and (3,3)        → (3,2) = row 14 (s = 0 comes first)
  const Pool2dGeometry g{.N = 1, .C = 1, .H = 4, .W = 4, .window = 2, .stride = 2};
  Mat<double> x(16, 1);
  x << 5, 5, 1, 7,  //
      5, 5, 7, 2,   //
      0, 4, 1, 1,   //
      4, 3, 6, 6;
  Mat<double> y, dx;
  const auto ctx = maxpool2d_fprop(g, x, y);
  const Eigen::VectorXd want_y = (Eigen::VectorXd(4) << 5, 7, 4, 6).finished();
  WDLAB_EXPECT_PASS(compare("maxpool tie values", span_of(Eigen::VectorXd(y.col(0))),
                            span_of(want_y), tol::Kind::exact_integer));
  const Eigen::VectorXd arg = ctx.argmax.col(0).cast<double>();
  const Eigen::VectorXd want_arg = (Eigen::VectorXd(4) << 0, 3, 9, 14).finished();
  WDLAB_EXPECT_PASS(compare("maxpool tie argmax rows", span_of(arg), span_of(want_arg),
                            tol::Kind::exact_integer));
  const Mat<double> dy = (Mat<double>(4, 1) << 1, 2, 3, 4).finished();
  maxpool2d_bprop(g, ctx, dy, dx);
  Mat<double> want_dx = Mat<double>::Zero(16, 1);
  want_dx(0) = 1;
  want_dx(3) = 2;
  want_dx(9) = 3;
  want_dx(14) = 4;
  WDLAB_EXPECT_PASS(
      compare("maxpool tie scatter", span_of(dx), span_of(want_dx), tol::Kind::exact_integer));
}

TEST_CASE("maxpool: an input that wins overlapping windows collects both gradients") {
  // 3×4 input, 3×3 windows at stride 1 → P = 1, Q = 2; both windows hold (1,2) = row 6.
  const Pool2dGeometry g{.N = 1, .C = 1, .H = 3, .W = 4, .window = 3, .stride = 1};
  Mat<double> x(12, 1);
  x << 1, 2, 3, 4,  //
      5, 6, 9, 7,   //
      1, 1, 1, 1;
  Mat<double> y, dx;
  const auto ctx = maxpool2d_fprop(g, x, y);
  maxpool2d_bprop(g, ctx, (Mat<double>(2, 1) << 10, 100).finished(), dx);
  Mat<double> want = Mat<double>::Zero(12, 1);
  want(6) = 110;
  WDLAB_EXPECT_PASS(
      compare("maxpool overlap accumulate", span_of(dx), span_of(want), tol::Kind::exact_integer));
}

TEST_CASE("maxpool: NaN propagates (the first NaN in the window wins)") {
  const Pool2dGeometry g{.N = 1, .C = 1, .H = 2, .W = 4, .window = 2, .stride = 2};
  const double nan = std::numeric_limits<double>::quiet_NaN();
  Mat<double> x(8, 1);
  x << 1, nan, 3, 4,  //
      9, 2, nan, nan;
  Mat<double> y;
  const auto ctx = maxpool2d_fprop(g, x, y);
  CHECK(std::isnan(y(0)));
  CHECK(std::isnan(y(1)));
  CHECK(ctx.argmax(0) == 1);
  CHECK(ctx.argmax(1) == 6);
}

TEST_CASE("maxpool float vs double, and misuse is refused") {
  for (const auto& g : pool_cases()) {
    const Mat<double> x = normal_mat(Eigen::Index(g.C) * g.H * g.W, g.N, 53);
    Mat<double> y;
    Mat<float> yf;
    maxpool2d_fprop(g, x, y);
    maxpool2d_fprop(g, cast<float>(x), yf);
    WDLAB_EXPECT_PASS(compare("maxpool y float " + g.describe(), span_of(to_double(yf)), span_of(y),
                              tol::Kind::float_forward));
  }
  const Pool2dGeometry g{.N = 1, .C = 1, .H = 4, .W = 4, .window = 2, .stride = 2};
  Mat<double> y;
  CHECK_THROWS_AS(maxpool2d_fprop(g, Mat<double>(Mat<double>::Zero(15, 1)), y), InternalError);
  CHECK_THROWS_AS(maxpool2d_fprop(Pool2dGeometry{.N = 1, .C = 1, .H = 1, .W = 4, .window = 2},
                                  Mat<double>(Mat<double>::Zero(4, 1)), y),
                  UsageError);
}

TEST_CASE("global average pool: value, dx by central differences, float vs double") {
  for (const GlobalPoolGeometry g : {GlobalPoolGeometry{.N = 3, .C = 4, .H = 3, .W = 2},
                                     GlobalPoolGeometry{.N = 2, .C = 3, .H = 1, .W = 1}}) {
    const int HW = g.H * g.W;
    const Mat<double> x = normal_mat(Eigen::Index(g.C) * HW, g.N, 61);
    const Mat<double> dy = normal_mat(g.C, g.N, 62);
    Mat<double> y, dx;
    global_avgpool_fprop(g, x, y);
    Mat<double> want(g.C, g.N);
    for (int n = 0; n < g.N; ++n)
      for (int c = 0; c < g.C; ++c) {
        double s = 0;
        for (int i = 0; i < HW; ++i) s += x(c * HW + i, n);
        want(c, n) = s / HW;
      }
    WDLAB_EXPECT_PASS(
        compare("gap y " + g.describe(), span_of(y), span_of(want), tol::Kind::exact_double));
    global_avgpool_bprop(g, dy, dx);
    const Mat<double> fdx = fd_gradient<Mat<double>>(
        [&](const Mat<double>& xx) {
          Mat<double> yy;
          global_avgpool_fprop(g, xx, yy);
          return dot(dy, yy);
        },
        x);
    WDLAB_EXPECT_PASS(
        compare("gap dx " + g.describe(), span_of(dx), span_of(fdx), tol::Kind::finite_difference));
    Mat<float> yf;
    global_avgpool_fprop(g, cast<float>(x), yf);
    WDLAB_EXPECT_PASS(compare("gap y float " + g.describe(), span_of(to_double(yf)), span_of(y),
                              tol::Kind::float_forward));
  }
  CHECK_THROWS_AS(GlobalPoolGeometry({.N = 1, .C = 0, .H = 1, .W = 1}).validate(), UsageError);
}

TEST_CASE("maxpool 2x2 stride 2 (the model zoo's pooling): values and argmax equal a window-by-window scan, with ties, NaN and ragged edges") {
  // Entries drawn from {0, 1, 2, NaN}: most windows hold ties or NaN. The scan below is the
  // documented rule written out independently: row-major window order, strict '>', a NaN beats
  // any number but not an earlier NaN.
  for (const Pool2dGeometry& g : {Pool2dGeometry{.N = 3, .C = 2, .H = 6, .W = 8, .window = 2, .stride = 2},
                                  Pool2dGeometry{.N = 2, .C = 3, .H = 7, .W = 5, .window = 2, .stride = 2}}) {
    Mat<float> x(g.C * g.H * g.W, g.N);
    for (Eigen::Index i = 0; i < x.size(); ++i) {
      const int v = int(rng::below(9, rng::Purpose::synthetic, 0, std::uint64_t(i), 4));
      x.data()[i] = v == 3 ? std::numeric_limits<float>::quiet_NaN() : float(v);
    }
    Mat<float> y;
    const auto ctx = maxpool2d_fprop(g, x, y);
    int nan_windows = 0, tie_windows = 0, mismatches = 0;
    for (int n = 0; n < g.N; ++n)
      for (int c = 0; c < g.C; ++c)
        for (int p = 0; p < g.P(); ++p)
          for (int q = 0; q < g.Q(); ++q) {
            int best = -1, equal = 0;
            for (int r = 0; r < 2; ++r)
              for (int s = 0; s < 2; ++s) {
                const int i = (c * g.H + 2 * p + r) * g.W + 2 * q + s;
                const float v = x(i, n);
                if (best < 0) { best = i; continue; }
                const float b = x(best, n);
                if (std::isnan(v) && !std::isnan(b)) best = i;
                else if (v > b) best = i;
                else if (v == b) ++equal;
              }
            const Eigen::Index o = (Eigen::Index(c) * g.P() + p) * g.Q() + q;
            nan_windows += std::isnan(x(best, n));
            tie_windows += equal > 0;
            const bool same_value = std::isnan(x(best, n)) ? std::isnan(y(o, n)) : y(o, n) == x(best, n);
            mismatches += !(same_value && ctx.argmax(o, n) == best);
          }
    MESSAGE(g.describe() << ": " << nan_windows << " NaN windows, " << tie_windows << " with ties, "
                         << mismatches << " mismatches");
    CHECK(nan_windows > 0);
    CHECK(tie_windows > 0);
    CHECK(mismatches == 0);
  }
}

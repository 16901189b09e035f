// Reference ReLU, tanh and residual join: gradients by central differences (ReLU inputs kept away from
// the kink, margin asserted), the documented choice at 0, NaN propagation, float vs double.
#include <fmt/format.h>

#include <limits>

#include "common/errors.hpp"
#include "ops_test_util.hpp"
#include "reference/ops/activation.hpp"
#include "reference/ops/residual.hpp"
#include "reference/ops/tanh.hpp"

using namespace wdlab;
using namespace wdlab::ref;
using namespace wdlab::ref::testing;

namespace {

/// Normal entries pushed out of (−margin, margin): x ← x + sign(x)·margin.
Mat<double> kink_free(Eigen::Index rows, Eigen::Index cols, std::uint64_t stream, double margin) {
  Mat<double> x = normal_mat(rows, cols, stream);
  return x.unaryExpr([margin](double v) { return v + (v >= 0 ? margin : -margin); });
}

}  // namespace

TEST_CASE("relu: dx matches central differences away from the kink") {
  const Mat<double> x = kink_free(12, 5, 71, 0.05);
  const double margin = x.cwiseAbs().minCoeff();
  MESSAGE(fmt::format("relu min |x| {:.3g}, FD step ≤ {:.3g}", margin,
                      fd_step(x.cwiseAbs().maxCoeff())));
  REQUIRE(margin > 100 * fd_step(x.cwiseAbs().maxCoeff()));
  REQUIRE((x.array() > 0).count() > 0);
  REQUIRE((x.array() < 0).count() > 0);
  const Mat<double> dy = normal_mat(12, 5, 72);
  Mat<double> y, dx;
  relu_fprop(x, y);
  relu_bprop(x, dy, dx);
  const Mat<double> fdx = fd_gradient<Mat<double>>(
      [&](const Mat<double>& xx) {
        Mat<double> yy;
        relu_fprop(xx, yy);
        return dot(dy, yy);
      },
      x);
  WDLAB_EXPECT_PASS(compare("relu dx", span_of(dx), span_of(fdx), tol::Kind::finite_difference));
  const Mat<double> want_y = x.cwiseMax(0.0);
  WDLAB_EXPECT_PASS(compare("relu y", span_of(y), span_of(want_y), tol::Kind::exact_double));
}

TEST_CASE("relu at and around 0: derivative 0 at x = ±0, 1 just above, NaN propagates") {
  const double tiny = std::numeric_limits<double>::denorm_min();
  const double nan = std::numeric_limits<double>::quiet_NaN();
  Mat<double> x(5, 1);
  x << 0.0, -0.0, tiny, -tiny, nan;
  const Mat<double> dy = Mat<double>::Constant(5, 1, 3.0);
  Mat<double> y, dx;
  relu_fprop(x, y);
  relu_bprop(x, dy, dx);
  const Eigen::VectorXd want_dx = (Eigen::VectorXd(5) << 0, 0, 3, 0, 0).finished();
  WDLAB_EXPECT_PASS(compare("relu dx at 0", span_of(Eigen::VectorXd(dx.col(0))), span_of(want_dx),
                            tol::Kind::exact_integer));
  CHECK(y(0) == 0.0);
  CHECK_FALSE(std::signbit(y(1)));  // −0 → +0
  CHECK(y(2) == tiny);
  CHECK(y(3) == 0.0);
  CHECK(std::isnan(y(4)));
  CHECK_THROWS_AS(relu_bprop(x, Mat<double>(Mat<double>::Zero(4, 1)), dx), InternalError);
}

TEST_CASE("relu float vs double") {
  const Mat<double> x = normal_mat(64, 8, 73);
  Mat<double> y;
  Mat<float> yf;
  relu_fprop(x, y);
  relu_fprop(cast<float>(x), yf);
  WDLAB_EXPECT_PASS(
      compare("relu y float", span_of(to_double(yf)), span_of(y), tol::Kind::float_forward));
}

TEST_CASE("tanh: y = tanh(x) against its exponential form, dx against central differences, float vs double") {
  const Mat<double> x = normal_mat(12, 5, 74, 1.5);
  const Mat<double> dy = normal_mat(12, 5, 75);
  Mat<double> y, dx;
  tanh_fprop(x, y);
  tanh_bprop(y, dy, dx);
  // tanh x = (e^{2x} − 1)/(e^{2x} + 1): computed independently of std::tanh.
  const Mat<double> want_y = x.unaryExpr([](double v) { return std::expm1(2 * v) / (std::exp(2 * v) + 1); });
  WDLAB_EXPECT_PASS(compare("tanh y", span_of(y), span_of(want_y), tol::Kind::exact_double));
  const Mat<double> fdx = fd_gradient<Mat<double>>(
      [&](const Mat<double>& xx) {
        Mat<double> yy;
        tanh_fprop(xx, yy);
        return dot(dy, yy);
      },
      x);
  WDLAB_EXPECT_PASS(compare("tanh dx", span_of(dx), span_of(fdx), tol::Kind::finite_difference));
  // Negative control: the derivative at the input, 1 − x², is not the VJP.
  Mat<double> wrong;
  tanh_bprop(x, dy, wrong);
  CHECK_FALSE(compare("tanh dx from x (control)", span_of(wrong), span_of(fdx), tol::Kind::finite_difference).pass);
  Mat<float> yf;
  tanh_fprop(cast<float>(x), yf);
  WDLAB_EXPECT_PASS(compare("tanh y float", span_of(to_double(yf)), span_of(y), tol::Kind::float_forward));
  CHECK_THROWS_AS(tanh_bprop(y, Mat<double>(Mat<double>::Zero(4, 1)), dx), InternalError);
}

TEST_CASE("residual: y = a + b, and both branches receive dy (central differences)") {
  const Mat<double> a = normal_mat(6, 4, 81), b = normal_mat(6, 4, 82), dy = normal_mat(6, 4, 83);
  Mat<double> y, da, db;
  residual_fprop(a, b, y);
  residual_bprop(dy, da, db);
  const Mat<double> sum = a + b;
  WDLAB_EXPECT_PASS(compare("residual y", span_of(y), span_of(sum), tol::Kind::exact_double));
  auto L = [&](const Mat<double>& aa, const Mat<double>& bb) {
    Mat<double> yy;
    residual_fprop(aa, bb, yy);
    return dot(dy, yy);
  };
  const Mat<double> fda =
      fd_gradient<Mat<double>>([&](const Mat<double>& aa) { return L(aa, b); }, a);
  const Mat<double> fdb =
      fd_gradient<Mat<double>>([&](const Mat<double>& bb) { return L(a, bb); }, b);
  WDLAB_EXPECT_PASS(
      compare("residual da", span_of(da), span_of(fda), tol::Kind::finite_difference));
  WDLAB_EXPECT_PASS(
      compare("residual db", span_of(db), span_of(fdb), tol::Kind::finite_difference));
  CHECK_THROWS_AS(residual_fprop(a, Mat<double>(b.leftCols(3)), y), InternalError);
}

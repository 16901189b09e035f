// Reference MLP passes against finite differences and against each other.
#include <doctest/doctest.h>

#include "../support/small_mlp.hpp"
#include <fmt/format.h>

#include "common/compare.hpp"
#include "reference/mlp/jacobian.hpp"
#include "theory/problem.hpp"

using namespace wdlab;
using wdlab::test::small_mlp;
using wdlab::test::span_of;
using namespace wdlab::ref;
using wdlab::theory::Problem;

namespace {

/// Every combination the reference supports, on kink-free inputs.
std::vector<Problem> problems() {
  std::vector<Problem> out;
  for (int depth : {0, 1, 3})
    for (Activation a : {Activation::linear, Activation::relu})
      for (Bias b : {Bias::off, Bias::on})
        for (Norm n : {Norm::none, Norm::batchnorm}) {
          if (n == Norm::batchnorm && depth == 0) continue;
          out.push_back(theory::make_problem(small_mlp(depth, a, b, n), 40 + depth, 6,
                                             theory::InputKind::kink_free));
        }
  return out;
}

double loss(const Problem& pb, const MlpParams<double>& p, const Mat<double>& X) {
  return theory::mean_cross_entropy(forward(pb.spec, p, X).output(), pb.labels);
}

}  // namespace

TEST_CASE("backward matches central differences of the loss, every layer kind") {
  for (const auto& pb : problems()) {
    const auto fw = forward(pb.spec, pb.params, pb.X);
    const auto g = backward(pb.spec, pb.params, fw,
                            theory::cross_entropy_cotangent(fw.output(), pb.labels));
    const Vec<double> analytic = g.flatten();
    const Vec<double> theta = pb.params.flatten();
    Vec<double> fd(theta.size());
    const double h = 1e-6;
    for (Eigen::Index q = 0; q < theta.size(); ++q) {
      Vec<double> tp = theta, tm = theta;
      tp(q) += h;
      tm(q) -= h;
      fd(q) = (loss(pb, MlpParams<double>::unflatten(pb.spec, tp), pb.X) -
               loss(pb, MlpParams<double>::unflatten(pb.spec, tm), pb.X)) / (2 * h);
    }
    const auto c = compare("dθ " + pb.spec.describe(), span_of(analytic), span_of(fd),
                           tol::Kind::finite_difference);
    MESSAGE(c.line());
    CHECK(c.pass);
    // Input gradient too.
    Mat<double> fdx(pb.X.rows(), pb.X.cols());
    for (Eigen::Index i = 0; i < pb.X.size(); ++i) {
      Mat<double> Xp = pb.X, Xm = pb.X;
      Xp.data()[i] += h;
      Xm.data()[i] -= h;
      fdx.data()[i] = (loss(pb, pb.params, Xp) - loss(pb, pb.params, Xm)) / (2 * h);
    }
    const auto cx = compare("dX " + pb.spec.describe(), span_of(g.dX), span_of(fdx),
                            tol::Kind::finite_difference);
    MESSAGE(cx.line());
    CHECK(cx.pass);
  }
}

TEST_CASE("jvp matches central differences of the forward pass") {
  for (const auto& pb : problems()) {
    const auto fw = forward(pb.spec, pb.params, pb.X);
    const Vec<double> theta = pb.params.flatten();
    Vec<double> dtheta(theta.size());
    for (Eigen::Index q = 0; q < dtheta.size(); ++q) dtheta(q) = std::sin(1.0 + 3.0 * q);
    const Mat<double> dX = Mat<double>::Constant(pb.X.rows(), pb.X.cols(), 0.3);
    const Mat<double> analytic =
        jvp<double>(pb.spec, pb.params, fw, MlpParams<double>::unflatten(pb.spec, dtheta), dX);
    const double h = 1e-6;
    const Mat<double> fp =
        forward<double>(pb.spec, MlpParams<double>::unflatten(pb.spec, theta + h * dtheta), pb.X + h * dX).output();
    const Mat<double> fm =
        forward<double>(pb.spec, MlpParams<double>::unflatten(pb.spec, theta - h * dtheta), pb.X - h * dX).output();
    const Mat<double> fd = (fp - fm) / (2 * h);
    const auto c = compare("jvp " + pb.spec.describe(), span_of(analytic), span_of(fd),
                           tol::Kind::finite_difference);
    MESSAGE(c.line());
    CHECK(c.pass);
  }
}

TEST_CASE("Jacobians by backprop and by forward mode agree (through BN batch statistics)") {
  for (const auto& pb : problems()) {
    const auto Jb = jacobian_theta(pb.spec, pb.params, pb.X, JacobianMethod::backprop);
    const auto Jf = jacobian_theta(pb.spec, pb.params, pb.X, JacobianMethod::forward_mode);
    const auto Xb = jacobian_x(pb.spec, pb.params, pb.X, JacobianMethod::backprop);
    const auto Xf = jacobian_x(pb.spec, pb.params, pb.X, JacobianMethod::forward_mode);
    for (std::size_t n = 0; n < Jb.size(); ++n) {
      const auto c = compare(fmt::format("J_theta[{}] {}", n, pb.spec.describe()), span_of(Jb[n]),
                             span_of(Jf[n]), tol::Kind::exact_double);
      const auto cx = compare(fmt::format("J_x[{}] {}", n, pb.spec.describe()), span_of(Xb[n]),
                              span_of(Xf[n]), tol::Kind::exact_double);
      if (n == 0) MESSAGE(c.line() << "\n" << cx.line());
      CHECK(c.pass);
      CHECK(cx.pass);
    }
  }
}

TEST_CASE("BN is invariant to scaling its input layer only when eps = 0") {
  MlpSpec s = small_mlp(2, Activation::relu, Bias::off, Norm::batchnorm);
  auto pb = theory::make_problem(s, 3, 8, theory::InputKind::gaussian);
  const Mat<double> f = forward(s, pb.params, pb.X).output();
  const Mat<double> f2 = forward(s, pb.params.scaled_layer(0, 0.01), pb.X).output();
  CHECK(theory::rel_error(f2, f) <= tol::of(tol::Kind::exact_double));
  s.bn_eps = 1e-3;  // TF's default: breaks exact invariance for small weights (a negative control)
  const Mat<double> g = forward(s, pb.params, pb.X).output();
  const Mat<double> g2 = forward(s, pb.params.scaled_layer(0, 0.01), pb.X).output();
  CHECK(theory::rel_error(g2, g) > 1e-3);
}

TEST_CASE("init is deterministic, seed-dependent and Glorot-scaled") {
  const MlpSpec s = small_mlp(2, Activation::relu, Bias::off, Norm::none);
  MlpSpec wide = s;
  wide.width = 400;
  wide.input_dim = 300;
  const auto a = init_params<double>(wide, 7), b = init_params<double>(wide, 7),
             c = init_params<double>(wide, 8);
  CHECK(a.flatten() == b.flatten());
  CHECK((a.flatten() - c.flatten()).norm() > 1.0);
  // Var(U(−r, r)) = r²/3 = 2/(fan_in + fan_out) for Glorot-uniform.
  const Mat<double>& W = a.W[1];  // 400×400
  const double var = W.squaredNorm() / double(W.size());
  CHECK(var == doctest::Approx(2.0 / 800).epsilon(0.02));
  const double limit = std::sqrt(6.0 / 800);
  CHECK(W.cwiseAbs().maxCoeff() <= limit);
  CHECK(W.cwiseAbs().maxCoeff() > 0.99 * limit);
}

TEST_CASE("flatten/unflatten round-trip and the θ layout follows param_offset") {
  const MlpSpec s = small_mlp(2, Activation::relu, Bias::on, Norm::none);
  const auto p = init_params<double>(s, 1, Init::glorot_uniform, 0.5);
  const Vec<double> t = p.flatten();
  CHECK(t.size() == s.num_params());
  CHECK(MlpParams<double>::unflatten(s, t).flatten() == t);
  // Layer 1's W(r, c) sits at offset + c*out + r (column-major), its bias right after.
  CHECK(t(s.param_offset(1) + 2 * s.out_dim(1) + 3) == p.W[1](3, 2));
  CHECK(t(s.param_offset(1) + s.out_dim(1) * s.in_dim(1) + 4) == p.b[1](4));
}

TEST_CASE("float instantiation agrees with double on a forward pass") {
  const MlpSpec s = small_mlp(3, Activation::relu, Bias::on, Norm::batchnorm);
  auto pb = theory::make_problem(s, 5, 8, theory::InputKind::gaussian);
  const auto pf = MlpParams<float>::unflatten(s, pb.params.flatten().cast<float>());
  const Mat<double> f = forward(s, pb.params, pb.X).output();
  const Mat<double> ff = forward<float>(s, pf, pb.X.cast<float>()).output().cast<double>();
  const auto c = compare("float forward", span_of(ff), span_of(f), tol::Kind::float_forward);
  MESSAGE(c.line());
  CHECK(c.pass);
  CHECK(c.rel_fro > 0);  // it really ran in float
}

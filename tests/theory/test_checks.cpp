// Every theory check as a test: it holds on networks of several depths, its preconditions are
// enforced, and its negative control fails.
#include <doctest/doctest.h>

#include "../support/small_mlp.hpp"

#include <cmath>

#include "common/errors.hpp"
#include "theory/checks.hpp"

using namespace wdlab;
using wdlab::test::small_mlp;
using wdlab::test::span_of;
using namespace wdlab::theory;

namespace {

void expect_holds(const CheckRecord& r) {
  INFO(r.id, " ", r.network, " lhs=", r.lhs, " rhs=", r.rhs, " rel_err=", r.rel_err, " tol=", r.tol, " ", r.reason);
  CHECK(r.expect == Outcome::holds);
  CHECK(r.outcome == Outcome::holds);
  CHECK(r.rel_err <= r.tol);
  CHECK(r.pass());
}

void expect_control_fails(const CheckRecord& r) {
  INFO(r.id, " ", r.network, " lhs=", r.lhs, " rhs=", r.rhs, " rel_err=", r.rel_err, " tol=", r.tol, " ", r.reason);
  CHECK(r.expect == Outcome::fails);
  CHECK(r.outcome == Outcome::fails);
  CHECK(r.rel_err > 100 * r.tol);  // fails by a wide margin, not by rounding
  CHECK(r.pass());
}

Problem gaussian(const MlpSpec& s, int seed = 1) { return make_problem(s, seed, 12, InputKind::gaussian); }

Problem bn_problem(int depth, int seed = 2) {
  Problem pb = gaussian(small_mlp(depth, Activation::relu, Bias::off, Norm::batchnorm), seed);
  pb.params = pb.params.scaled_layer(0, 3.0);
  return pb;
}

}  // namespace

TEST_CASE("lemma1: f = J_x x = J_theta theta/(L+1) = J_{W_l} vec(W_l), and biases break it") {
  for (int depth : {1, 3})
    for (Activation a : {Activation::linear, Activation::relu}) {
      const auto pb = gaussian(small_mlp(depth, a));
      expect_holds(lemma1_jx(pb));
      expect_holds(lemma1_jtheta(pb));
      expect_holds(lemma1_per_layer(pb));
    }
  expect_control_fails(lemma1_with_bias_control(gaussian(small_mlp(2, Activation::relu, Bias::on))));
  CHECK_THROWS_AS(lemma1_jx(gaussian(small_mlp(2, Activation::relu, Bias::on))), PreconditionError);
  CHECK_THROWS_AS(lemma1_jtheta(gaussian(small_mlp(2, Activation::relu, Bias::on))), PreconditionError);
  CHECK_THROWS_AS(lemma1_with_bias_control(gaussian(small_mlp(2, Activation::relu))), PreconditionError);
}

TEST_CASE("lemma2: GN norm, block-diagonal GN norm, K-FAC GN norm, K-FAC inexact for ReLU") {
  for (int depth : {1, 2, 4})
    for (Activation a : {Activation::linear, Activation::relu}) {
      const auto pb = gaussian(small_mlp(depth, a), depth);
      expect_holds(lemma2_gn(pb));
      expect_holds(lemma2_blockdiag(pb));
      if (a == Activation::linear) expect_holds(lemma2_kfac(pb));
      else expect_control_fails(lemma2_kfac_relu_control(pb));
    }
  CHECK_THROWS_AS(lemma2_kfac(gaussian(small_mlp(2, Activation::relu))), PreconditionError);
  CHECK_THROWS_AS(lemma2_gn(gaussian(small_mlp(2, Activation::relu, Bias::on))), PreconditionError);
}

TEST_CASE("theorem1: GN and K-FAC GN norms are Jacobian norms for whitened inputs only") {
  for (int depth : {1, 3}) {
    const auto s = small_mlp(depth, Activation::linear);
    const auto white = make_problem(s, 5, 16, InputKind::whitened);
    expect_holds(theorem1_gn(white));
    expect_holds(theorem1_kfac(white));
    const auto corr = make_problem(s, 5, 16, InputKind::correlated);
    expect_control_fails(theorem1_unwhitened_control(corr));
    CHECK_THROWS_AS(theorem1_gn(corr), PreconditionError);
    CHECK_THROWS_AS(theorem1_kfac(gaussian(s)), PreconditionError);  // Gaussian ≠ exactly whitened
  }
  CHECK_THROWS_AS(theorem1_gn(make_problem(small_mlp(2, Activation::relu), 5, 16, InputKind::whitened)),
                  PreconditionError);
}

TEST_CASE("appE: gradient of the GN norm is 2(L+1) G theta, skipped on inputs at a ReLU kink") {
  for (int depth : {1, 2})
    for (Activation a : {Activation::linear, Activation::relu}) {
      expect_holds(appE_gradient(make_problem(small_mlp(depth, a), 3, 8, InputKind::kink_free)));
      // Plain Gaussian inputs: the step is chosen from the distance to the nearest kink.
      expect_holds(appE_gradient(make_problem(small_mlp(depth, a), 3, 8, InputKind::gaussian)));
    }
  auto pb = make_problem(small_mlp(2, Activation::relu), 3, 8, InputKind::kink_free);
  // Example 0 projected onto the null space of W_1's first row: its first pre-activation is 0
  // up to rounding, and moves with the weights: no step keeps it on one side.
  const Eigen::VectorXd w = pb.params.W[0].row(0).transpose();
  pb.X.col(0) -= w * (w.dot(pb.X.col(0)) / w.squaredNorm());
  const auto r = appE_gradient(pb);
  CHECK(r.skipped());
  CHECK(r.reason.find("kink") != std::string::npos);
  CHECK_FALSE(r.pass());
  // An example of zeros is harmless: its pre-activations are exactly 0 and stay 0 (pinned).
  auto zero = make_problem(small_mlp(2, Activation::relu), 3, 8, InputKind::kink_free);
  zero.X.col(0).setZero();
  expect_holds(appE_gradient(zero));
}

TEST_CASE("both sides exactly 0 is a match, never NaN") {
  // A ReLU network whose output layer is 0: f = 0, so θᵀGθ = (L+1)²E‖f‖² = 0 on both sides.
  auto pb = gaussian(small_mlp(2, Activation::relu));
  pb.params.W.back().setZero();
  const auto r = lemma2_gn(pb);
  CHECK(r.lhs == 0);
  CHECK(r.rhs == 0);
  CHECK(r.rel_err == 0);
  CHECK(r.pass());
  CHECK(rel_scalar(0, 0) == 0);
  CHECK(rel_scalar(1e-300, 0) == 1);
  CHECK(rel_error(Mat<double>::Zero(2, 2), Mat<double>::Zero(2, 2)) == 0);
}

TEST_CASE("eq8: BN scale invariance, gradient scaling and orthogonality") {
  for (int depth : {1, 3}) {
    const auto pb = bn_problem(depth);
    expect_holds(eq8_invariance(pb, 0, 0.2));
    expect_holds(eq8_invariance(pb, 0, 5.0));
    expect_holds(eq8_gradient_scaling(pb, 0, 3.0));
    expect_holds(eq8_gradient_orthogonal(pb, 0));
  }
  // The output layer has no BN: scaling it changes the function, and the check refuses it.
  const auto pb = bn_problem(2);
  CHECK_THROWS_AS(eq8_invariance(pb, 2, 2.0), PreconditionError);
  CHECK_THROWS_AS(eq8_invariance(gaussian(small_mlp(2, Activation::relu)), 0, 2.0), PreconditionError);
}

TEST_CASE("eq9: effective learning rate eta/|theta|^2, and the wrong power fails") {
  for (int depth : {1, 2}) {
    const auto pb = bn_problem(depth);
    expect_holds(eq9_effective_lr(pb, 0));
    expect_control_fails(eq9_wrong_power_control(pb, 0));
  }
}

TEST_CASE("eq15: curvature of a BN layer scales as 1/c^2 for every curvature") {
  const auto pb = bn_problem(2);
  for (Curvature c : {Curvature::fisher, Curvature::gauss_newton, Curvature::kfac_gauss_newton,
                      Curvature::kfac_fisher})
    for (double scale : {0.5, 4.0}) expect_holds(eq15_curvature_scaling(pb, 0, c, scale));
  // Negative control: without BN the layer's curvature does not scale as 1/c².
  const auto plain = gaussian(small_mlp(2, Activation::relu));
  CHECK_THROWS_AS(eq15_curvature_scaling(plain, 0, Curvature::fisher, 2.0), PreconditionError);
}

TEST_CASE("eq16: effective damping lambda |theta|^2, and plain lambda fails") {
  for (int depth : {1, 3}) {
    const auto pb = bn_problem(depth);
    DampingColumns shared;  // the Jacobian columns carried between rows, as run_suite does
    for (Curvature c : {Curvature::fisher, Curvature::gauss_newton}) {
      const auto alone = eq16_effective_damping(pb, 0, c);
      expect_holds(alone);
      expect_control_fails(eq16_plain_damping_control(pb, 0, c));
      // Sharing the columns changes nothing: the same numbers as computed afresh.
      const auto with_shared = eq16_effective_damping(pb, 0, c, &shared);
      CHECK(with_shared.lhs == alone.lhs);
      CHECK(with_shared.rhs == alone.rhs);
      CHECK(eq16_plain_damping_control(pb, 0, c, &shared).rel_err == eq16_plain_damping_control(pb, 0, c).rel_err);
    }
    CHECK(shared.at_theta.size() > 0);
    // Columns of another network are not reused: the rows equal those computed afresh.
    const auto other = bn_problem(depth, 5);
    CHECK(eq16_effective_damping(other, 0, Curvature::fisher, &shared).lhs ==
          eq16_effective_damping(other, 0, Curvature::fisher).lhs);
    // Finding, not a failure of the paper: App. D needs C(θ_l)θ_l = 0 so that ‖θ_l‖ moves only
    // at O(η²). The exact blocks satisfy it (J_{θ_l}θ_l = 0); the K-FAC block Ā⊗S does not
    // (S W Ā ≠ 0 once a and g are decoupled), so with K-FAC Eq. 16 carries an O(η) error.
    const auto kfac = eq16_effective_damping(pb, 0, Curvature::kfac_gauss_newton);
    INFO(kfac.network, " rel_err=", kfac.rel_err);
    CHECK(kfac.outcome == Outcome::fails);
  }
}

TEST_CASE("fisher: F = GGN for CE, F = G for squared error, MC Fisher converges as n^-1/2") {
  for (Norm n : {Norm::none, Norm::batchnorm}) {
    const auto pb = gaussian(small_mlp(2, Activation::relu, Bias::on, n));
    expect_holds(fisher_ggn(pb));
    expect_holds(fisher_squared_loss(pb));
  }
  expect_holds(fisher_monte_carlo(gaussian(small_mlp(2, Activation::relu))));
}

TEST_CASE("eq7: the weight-decay update is a preconditioned step on the C-norm") {
  for (Activation a : {Activation::linear, Activation::relu}) {
    expect_holds(eq7_wd_c_norm(make_problem(small_mlp(2, a), 6, 8, InputKind::kink_free)));
    expect_holds(eq7_wd_c_norm(make_problem(small_mlp(3, a), 6, 16, InputKind::gaussian)));
  }
}

TEST_CASE("make_problem: whitened inputs are exactly whitened, correlated ones are not") {
  const auto s = small_mlp(1, Activation::linear);
  CHECK_NOTHROW(require_whitened(make_problem(s, 1, 10, InputKind::whitened).X, "t"));
  CHECK_THROWS_AS(require_whitened(make_problem(s, 1, 10, InputKind::correlated).X, "t"),
                  PreconditionError);
  CHECK_THROWS_AS(make_problem(s, 1, 3, InputKind::whitened), PreconditionError);  // N < d
}

TEST_CASE("ext.exp_lr_equivalence: WD = exponentially growing LR on BN layers, a trained output layer breaks it") {
  // x solves x² − (1+γ−ηλ)x + γ = 0, checked by substitution; γ = 0 gives 1 − ηλ.
  for (double gamma : {0.0, 0.5, 0.9}) {
    const double x = momentum_rate(0.1, 0.01, gamma);
    CHECK(std::abs(x * x - (1 + gamma - 0.001) * x + gamma) < 1e-14);
    CHECK(x > 0.98);  // ≈ 1 − ηλ/(1 − γ)
    CHECK(x < 1.0);
  }
  CHECK(momentum_rate(0.1, 0.01, 0.0) == doctest::Approx(0.999).epsilon(1e-15));
  for (std::uint64_t seed : {1u, 2u}) {
    const auto pb = ext_problem(seed, 2);
    for (double gamma : {0.0, 0.9}) expect_holds(ext_exp_lr_equivalence(pb, gamma, ExpLrTrained::scale_invariant_only));
    expect_control_fails(ext_exp_lr_equivalence(pb, 0.9, ExpLrTrained::with_output_layer));
    expect_control_fails(ext_exp_lr_equivalence(pb, 0.0, ExpLrTrained::with_output_layer));
  }
  CHECK_THROWS_AS(ext_exp_lr_equivalence(gaussian(small_mlp(2, Activation::relu)), 0.0,
                                         ExpLrTrained::scale_invariant_only),
                  PreconditionError);
}

TEST_CASE("ext.angular_equilibrium: SGDM angle sqrt(2 eta lambda/(1+alpha)) coupled, (1-alpha) factor decoupled") {
  for (std::uint64_t seed : {1u, 4u}) {
    const auto pb = ext_problem(seed, 2);
    const auto coupled = ext_angular_equilibrium(pb, EqOptimizer::sgd_coupled);
    const auto decoupled = ext_angular_equilibrium(pb, EqOptimizer::sgd_decoupled);
    expect_holds(coupled);
    expect_holds(decoupled);
    // Independent of the code: the coupled constant sqrt(2*0.05*0.05/1.9).
    CHECK(coupled.rhs == doctest::Approx(std::sqrt(0.005 / 1.9)).epsilon(1e-12));
    // The decoupled constant is within O(eta lambda) of sqrt(2 eta lambda (1-alpha)/(1+alpha)).
    CHECK(decoupled.rhs == doctest::Approx(std::sqrt(0.005 * 0.1 / 1.9)).epsilon(0.02));
    // The two forms' constants differ by a factor sqrt(1 - alpha) = 0.32 (relative gaps 0.68 and
    // 2.2); the tolerances stay well below the smaller one.
    CHECK(coupled.tol < 0.3);
    CHECK(decoupled.tol < 0.3);
    for (EqOptimizer o : {EqOptimizer::sgd_coupled, EqOptimizer::sgd_decoupled}) {
      const auto c = ext_angular_equilibrium(pb, o, AngularCase::other_form_constant);
      INFO(c.network, " rel_err=", c.rel_err, " tol=", c.tol);
      CHECK(c.expect == Outcome::fails);
      CHECK(c.outcome == Outcome::fails);
      CHECK(c.rel_err > 2 * c.tol);
    }
  }
}

TEST_CASE("ext.grad_weight_ratio: |g|/|w| = sqrt(2 lambda/eta) at equilibrium, without WD it keeps falling") {
  const auto pb = ext_problem(3, 1);
  const auto r = ext_grad_weight_ratio(pb, GradRatioCase::weight_decay);
  expect_holds(r);
  CHECK(r.rhs == doctest::Approx(std::sqrt((2 * 0.1 - 0.1 * 0.01) / 0.1)));
  const auto c = ext_grad_weight_ratio(pb, GradRatioCase::no_weight_decay);
  expect_control_fails(c);
  CHECK(c.lhs < r.lhs);
}

// Lemma 1, Lemma 2, Theorem 1 and App. E (Mechanism II: the K-FAC Gauss-Newton norm).
#include <cmath>

#include <fmt/format.h>

#include "common/errors.hpp"
#include "reference/curvature.hpp"
#include "reference/jacobian.hpp"
#include "theory/checks.hpp"

namespace wdlab::theory {

using ref::JacobianMethod;

namespace {

double mean_sq_output(const Problem& pb) {
  const auto fw = ref::forward(pb.spec, pb.params, pb.X);
  return fw.output().colwise().squaredNorm().mean();  // E‖f‖²
}

/// J_θ θ for every example, stacked K×N (the Jacobians from `method`).
Mat<double> jtheta_times_theta(const Problem& pb, JacobianMethod method) {
  const auto J = ref::jacobian_theta(pb.spec, pb.params, pb.X, method);
  const Vec<double> theta = pb.params.flatten();
  Mat<double> out(pb.spec.output_dim, pb.X.cols());
  for (Eigen::Index n = 0; n < pb.X.cols(); ++n) out.col(n) = J[n] * theta;
  return out;
}

CheckRecord jtheta_record(const Problem& pb, std::string id, Outcome expect) {
  const Mat<double> lhs = jtheta_times_theta(pb, JacobianMethod::forward_mode);
  const Mat<double> rhs =
      double(pb.spec.depth + 1) * ref::forward(pb.spec, pb.params, pb.X).output();
  CheckRecord r{.id = std::move(id), .paper_ref = "Lemma 1, Eq. 10",
                .statement = "J_theta theta = (L+1) f(x)", .network = pb.spec.describe()};
  r.lhs = lhs.norm();
  r.rhs = rhs.norm();
  r.rel_err = rel_error(lhs, rhs);
  r.expect = expect;
  return finish(r);
}

/// ‖J_x‖²_F of a linear net (J_x is the same for every input; example 0's is used).
double jx_frobenius_sq(const Problem& pb) {
  return ref::jacobian_x(pb.spec, pb.params, pb.X, JacobianMethod::forward_mode)[0].squaredNorm();
}

double kfac_gn_norm(const Problem& pb) {
  const auto f = ref::kfac_factors(pb.spec, pb.params, pb.X, ref::KfacCurvature::gn_exact);
  return ref::kfac_norm(pb.spec, pb.params, f);
}

CheckRecord kfac_record(const Problem& pb, std::string id, Outcome expect) {
  CheckRecord r{.id = std::move(id), .paper_ref = "Lemma 2, Eq. 11",
                .statement = "theta^T G_KFAC theta = (L+1) E|f|^2", .network = pb.spec.describe()};
  r.lhs = kfac_gn_norm(pb);
  r.rhs = double(pb.spec.depth + 1) * mean_sq_output(pb);
  r.rel_err = std::abs(r.lhs - r.rhs) / std::abs(r.rhs);
  r.expect = expect;
  return finish(r);
}

CheckRecord theorem1_record(const Problem& pb, std::string id, bool kfac, Outcome expect) {
  const double L1 = pb.spec.depth + 1;
  CheckRecord r{.id = std::move(id),
                .paper_ref = kfac ? "Theorem 1, Eq. 12 (v1) / 14 (CR)" : "Theorem 1, Eq. 13 (CR)",
                .statement = kfac ? "theta^T G_KFAC theta = (L+1) |J_x|_F^2"
                                  : "theta^T G theta = (L+1)^2 |J_x|_F^2",
                .network = pb.spec.describe()};
  if (kfac) {
    r.lhs = kfac_gn_norm(pb);
  } else {
    const Mat<double> G = ref::gauss_newton(
        ref::jacobian_theta(pb.spec, pb.params, pb.X, JacobianMethod::forward_mode));
    const Vec<double> theta = pb.params.flatten();
    r.lhs = theta.dot(G * theta);
  }
  r.rhs = (kfac ? L1 : L1 * L1) * jx_frobenius_sq(pb);
  r.rel_err = std::abs(r.lhs - r.rhs) / std::abs(r.rhs);
  r.expect = expect;
  return finish(r);
}

}  // namespace

CheckRecord lemma1_jx(const Problem& pb) {
  require_no_bias(pb.spec, "lemma1.jx");
  require_no_bn(pb.spec, "lemma1.jx");
  const auto J = ref::jacobian_x(pb.spec, pb.params, pb.X, JacobianMethod::backprop);
  Mat<double> lhs(pb.spec.output_dim, pb.X.cols());
  for (Eigen::Index n = 0; n < pb.X.cols(); ++n) lhs.col(n) = J[n] * pb.X.col(n);
  const Mat<double> rhs = ref::forward(pb.spec, pb.params, pb.X).output();
  CheckRecord r{.id = "lemma1.jx", .paper_ref = "Lemma 1, Eq. 10",
                .statement = "f(x) = J_x x", .network = pb.spec.describe()};
  return finish_vectors(r, lhs, rhs);
}

CheckRecord lemma1_jtheta(const Problem& pb) {
  require_no_bias(pb.spec, "lemma1.jtheta");
  require_no_bn(pb.spec, "lemma1.jtheta");
  return jtheta_record(pb, "lemma1.jtheta", Outcome::holds);
}

CheckRecord lemma1_with_bias_control(const Problem& pb) {
  if (pb.spec.bias != Bias::on)
    throw PreconditionError("lemma1.with_bias: the control needs a network with biases");
  return jtheta_record(pb, "lemma1.with_bias", Outcome::fails);
}

CheckRecord lemma1_per_layer(const Problem& pb) {
  require_no_bias(pb.spec, "lemma1.per_layer");
  require_no_bn(pb.spec, "lemma1.per_layer");
  const auto J = ref::jacobian_theta(pb.spec, pb.params, pb.X, JacobianMethod::backprop);
  const Mat<double> f = ref::forward(pb.spec, pb.params, pb.X).output();
  const Vec<double> theta = pb.params.flatten();
  CheckRecord r{.id = "lemma1.per_layer", .paper_ref = "Lemma 1 (App. B)",
                .statement = "J_{W_l} vec(W_l) = f(x) for every layer l"};
  int worst = 0;
  for (int l = 0; l < pb.spec.num_layers(); ++l) {
    const int off = pb.spec.param_offset(l), cnt = pb.spec.layer_param_count(l);
    Mat<double> lhs(f.rows(), f.cols());
    for (Eigen::Index n = 0; n < f.cols(); ++n)
      lhs.col(n) = J[n].middleCols(off, cnt) * theta.segment(off, cnt);
    const double e = rel_error(lhs, f);
    if (l == 0 || e > r.rel_err) {
      r.rel_err = e;
      r.lhs = lhs.norm();
      worst = l;
    }
  }
  r.rhs = f.norm();
  r.network = fmt::format("{} (worst layer {})", pb.spec.describe(), worst + 1);
  return finish(r);
}

CheckRecord lemma2_gn(const Problem& pb) {
  require_no_bias(pb.spec, "lemma2.gn");
  require_no_bn(pb.spec, "lemma2.gn");
  const Mat<double> G = ref::gauss_newton(
      ref::jacobian_theta(pb.spec, pb.params, pb.X, JacobianMethod::forward_mode));
  const Vec<double> theta = pb.params.flatten();
  const double L1 = pb.spec.depth + 1;
  CheckRecord r{.id = "lemma2.gn", .paper_ref = "Lemma 2, Eq. 11",
                .statement = "theta^T G theta = (L+1)^2 E|f|^2", .network = pb.spec.describe()};
  r.lhs = theta.dot(G * theta);
  r.rhs = L1 * L1 * mean_sq_output(pb);
  r.rel_err = std::abs(r.lhs - r.rhs) / std::abs(r.rhs);
  return finish(r);
}

CheckRecord lemma2_blockdiag(const Problem& pb) {
  require_no_bias(pb.spec, "lemma2.blockdiag");
  require_no_bn(pb.spec, "lemma2.blockdiag");
  const Mat<double> G =
      ref::gauss_newton(ref::jacobian_theta(pb.spec, pb.params, pb.X, JacobianMethod::backprop));
  const Vec<double> theta = pb.params.flatten();
  CheckRecord r{.id = "lemma2.blockdiag", .paper_ref = "Lemma 2 (App. C)",
                .statement = "sum_l theta_l^T G_ll theta_l = (L+1) E|f|^2",
                .network = pb.spec.describe()};
  for (int l = 0; l < pb.spec.num_layers(); ++l) {
    const Vec<double> t = theta.segment(pb.spec.param_offset(l), pb.spec.layer_param_count(l));
    r.lhs += t.dot(ref::layer_block(pb.spec, G, l) * t);
  }
  r.rhs = double(pb.spec.depth + 1) * mean_sq_output(pb);
  r.rel_err = std::abs(r.lhs - r.rhs) / std::abs(r.rhs);
  return finish(r);
}

CheckRecord lemma2_kfac(const Problem& pb) {
  require_no_bias(pb.spec, "lemma2.kfac");
  require_no_bn(pb.spec, "lemma2.kfac");
  require_linear(pb.spec, "lemma2.kfac");
  return kfac_record(pb, "lemma2.kfac", Outcome::holds);
}

CheckRecord lemma2_kfac_relu_control(const Problem& pb) {
  require_no_bias(pb.spec, "lemma2.kfac_relu");
  if (pb.spec.activation != Activation::relu || pb.spec.depth < 1)
    throw PreconditionError("lemma2.kfac_relu: the control needs a ReLU net with a hidden layer");
  return kfac_record(pb, "lemma2.kfac_relu", Outcome::fails);
}

CheckRecord theorem1_gn(const Problem& pb) {
  require_no_bias(pb.spec, "theorem1.gn");
  require_linear(pb.spec, "theorem1.gn");
  require_no_bn(pb.spec, "theorem1.gn");
  require_whitened(pb.X, "theorem1.gn");
  return theorem1_record(pb, "theorem1.gn", false, Outcome::holds);
}

CheckRecord theorem1_kfac(const Problem& pb) {
  require_no_bias(pb.spec, "theorem1.kfac");
  require_linear(pb.spec, "theorem1.kfac");
  require_no_bn(pb.spec, "theorem1.kfac");
  require_whitened(pb.X, "theorem1.kfac");
  return theorem1_record(pb, "theorem1.kfac", true, Outcome::holds);
}

CheckRecord theorem1_unwhitened_control(const Problem& pb) {
  require_no_bias(pb.spec, "theorem1.unwhitened");
  require_linear(pb.spec, "theorem1.unwhitened");
  return theorem1_record(pb, "theorem1.unwhitened", true, Outcome::fails);
}

CheckRecord appE_gradient(const Problem& pb) {
  require_no_bias(pb.spec, "appE.gradient");
  require_no_bn(pb.spec, "appE.gradient");
  const Vec<double> theta = pb.params.flatten();
  const double h = 1e-6 * std::max(1.0, theta.cwiseAbs().maxCoeff());
  // The kinks must be farther than any perturbation can move a pre-activation.
  require_away_from_kinks(pb, 1e3 * h * (1.0 + pb.X.cwiseAbs().maxCoeff()), "appE.gradient");
  // φ(θ) = θᵀ G(θ) θ = E‖J_θ(θ) θ‖²: one JVP along θ itself, G never formed.
  auto phi = [&](const Vec<double>& t) {
    const auto p = ref::MlpParams<double>::unflatten(pb.spec, t);
    const auto fw = ref::forward(pb.spec, p, pb.X);
    const Mat<double> Jt = ref::jvp<double>(pb.spec, p, fw, p, Mat<double>::Zero(pb.X.rows(), pb.X.cols()));
    return Jt.colwise().squaredNorm().mean();
  };
  const Vec<double> lhs = central_gradient(theta, h, phi);
  const Mat<double> G =
      ref::gauss_newton(ref::jacobian_theta(pb.spec, pb.params, pb.X, JacobianMethod::backprop));
  const Vec<double> rhs = 2.0 * double(pb.spec.depth + 1) * (G * theta);
  CheckRecord r{.id = "appE.gradient", .paper_ref = "App. E, Eq. 18-19 (v1)",
                .statement = "grad |theta|_G^2 = 2(L+1) G theta (central differences)",
                .network = pb.spec.describe(), .tol_kind = tol::Kind::finite_difference};
  return finish_vectors(r, lhs, rhs);
}

}  // namespace wdlab::theory

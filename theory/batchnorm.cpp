// Eq. 8, 9 (Mechanism I: effective learning rate) and Eq. 15, 16 (Mechanism III: effective
// damping) on a BN layer θ_l. Only θ_l moves; the other layers are held fixed.
#include <array>
#include <cmath>

#include <fmt/format.h>

#include "common/errors.hpp"
#include "reference/curvature.hpp"
#include "reference/jacobian.hpp"
#include "theory/checks.hpp"

namespace wdlab::theory {

std::string to_string(Curvature c) {
  switch (c) {
    case Curvature::fisher: return "Fisher";
    case Curvature::gauss_newton: return "GN";
    case Curvature::kfac_gauss_newton: return "K-FAC GN";
    case Curvature::kfac_fisher: return "K-FAC Fisher";
  }
  return "?";
}

namespace {

using Params = ref::MlpParams<double>;

void require_bn_layer(const Problem& pb, int layer, const std::string& check) {
  if (layer < 0 || layer >= pb.spec.num_layers() || !pb.spec.has_bn(layer))
    throw PreconditionError(fmt::format("{}: layer {} is not followed by BN in {}", check,
                                        layer + 1, pb.spec.describe()));
}

Vec<double> layer_theta(const MlpSpec& s, const Params& p, int l) {
  return p.flatten().segment(s.param_offset(l), s.layer_param_count(l));
}

Params with_layer(const MlpSpec& s, const Params& p, int l, const Vec<double>& t) {
  Vec<double> theta = p.flatten();
  theta.segment(s.param_offset(l), s.layer_param_count(l)) = t;
  return Params::unflatten(s, theta);
}

/// ∇_{θ_l} of the mean cross-entropy, by backprop.
Vec<double> layer_grad(const Problem& pb, const Params& p, int l) {
  const auto fw = ref::forward(pb.spec, p, pb.X);
  const auto g = ref::backward(pb.spec, p, fw, cross_entropy_cotangent(fw.output(), pb.labels));
  return g.flatten().segment(pb.spec.param_offset(l), pb.spec.layer_param_count(l));
}

/// The layer-l block of the curvature C at parameters p.
Mat<double> curvature_block(const Problem& pb, const Params& p, int l, Curvature c) {
  switch (c) {
    case Curvature::fisher:
      return ref::layer_block(pb.spec, ref::fisher_exact_ce(pb.spec, p, pb.X), l);
    case Curvature::gauss_newton:
      return ref::layer_block(
          pb.spec,
          ref::gauss_newton(ref::jacobian_theta(pb.spec, p, pb.X, ref::JacobianMethod::backprop)),
          l);
    case Curvature::kfac_gauss_newton:
      return ref::kfac_block(
          pb.spec, ref::kfac_factors(pb.spec, p, pb.X, ref::KfacCurvature::gn_exact)[l], l);
    case Curvature::kfac_fisher:
      return ref::kfac_block(
          pb.spec, ref::kfac_factors(pb.spec, p, pb.X, ref::KfacCurvature::fisher_exact)[l], l);
  }
  throw InternalError("curvature_block: unknown curvature");
}

/// Shared shape of Eq. 9 and Eq. 16: the true normalized step vs a first-order prediction at
/// relative step sizes r = 1e-2, 1e-3, 1e-4. Returns (e/η² at smallest η, at largest η).
struct Eta2 { double small, large; };

template <class Actual, class Predicted>
Eta2 eta2_sequence(double eta_unit, Actual actual, Predicted pred) {
  std::array<double, 3> ratio{};
  const std::array<double, 3> rel{1e-2, 1e-3, 1e-4};
  for (int k = 0; k < 3; ++k) {
    const double eta = rel[k] * eta_unit;
    const Vec<double> next = actual(eta);
    const double e = (next / next.norm() - pred(eta)).norm();
    ratio[k] = e / (eta * eta);
  }
  return {ratio[2], ratio[0]};
}

CheckRecord eta2_record(CheckRecord r, Eta2 e) {
  r.lhs = e.small;
  r.rhs = e.large;
  r.rel_err = std::abs(e.small - e.large) / std::abs(e.large);
  r.tol_kind = tol::Kind::order_eta2;
  return finish(r);
}

CheckRecord effective_lr(const Problem& pb, int layer, double power, std::string id,
                         Outcome expect) {
  require_bn_layer(pb, layer, id);
  const Vec<double> theta = layer_theta(pb.spec, pb.params, layer);
  const double rho = theta.norm();
  const Vec<double> g = layer_grad(pb, pb.params, layer);
  const Vec<double> th = theta / rho;
  // Gradient at the normalized weights, computed afresh (not rescaled from g).
  const Vec<double> g_hat = layer_grad(pb, with_layer(pb.spec, pb.params, layer, th), layer);
  const Vec<double> proj = g_hat - th * th.dot(g_hat);  // (I − θ̂θ̂ᵀ)∇_θ̂ L
  const auto e = eta2_sequence(
      rho / g.norm(), [&](double eta) -> Vec<double> { return theta - eta * g; },
      [&](double eta) -> Vec<double> { return th - eta / std::pow(rho, power) * proj; });
  CheckRecord r{.id = std::move(id), .paper_ref = "Eq. 9 (Hoffer et al.)",
                .statement = power == 2 ? "SGD moves theta_hat by eta/|theta|^2 x projected grad + O(eta^2)"
                                        : "control: eta/|theta| (wrong power) leaves an O(eta) error",
                .network = fmt::format("{} layer {} |theta_l|={:.3g}", pb.spec.describe(),
                                       layer + 1, rho),
                .expect = expect};
  return eta2_record(r, e);
}

CheckRecord effective_damping(const Problem& pb, int layer, Curvature c, bool scaled,
                              std::string id, Outcome expect) {
  require_bn_layer(pb, layer, id);
  const Vec<double> theta = layer_theta(pb.spec, pb.params, layer);
  const double rho = theta.norm();
  const Vec<double> th = theta / rho;
  const Params p_hat = with_layer(pb.spec, pb.params, layer, th);
  const Mat<double> C = curvature_block(pb, pb.params, layer, c);
  const Mat<double> C_hat = curvature_block(pb, p_hat, layer, c);
  // λ comparable to the curvature so that both terms of C(θ̂) + λρ²I matter.
  const double lambda = C_hat.trace() / double(C_hat.rows()) / (rho * rho);
  const Eigen::Index n = theta.size();
  const Mat<double> I = Mat<double>::Identity(n, n);
  const Vec<double> step = (C + lambda * I).ldlt().solve(layer_grad(pb, pb.params, layer));
  const double eff = scaled ? lambda * rho * rho : lambda;
  const Vec<double> step_hat = (C_hat + eff * I).ldlt().solve(layer_grad(pb, p_hat, layer));
  const auto e = eta2_sequence(
      rho / step.norm(), [&](double eta) -> Vec<double> { return theta - eta * step; },
      [&](double eta) -> Vec<double> { return th - eta * step_hat; });
  CheckRecord r{.id = std::move(id), .paper_ref = "Eq. 14 (v1) / 16 (CR), App. D",
                .statement = scaled ? "damped NG step on theta_hat has damping lambda|theta|^2 + O(eta^2)"
                                    : "control: damping lambda (unscaled) leaves an O(eta) error",
                .network = fmt::format("{} layer {} {} |theta_l|={:.3g}", pb.spec.describe(),
                                       layer + 1, to_string(c), rho),
                .expect = expect};
  return eta2_record(r, e);
}

}  // namespace

CheckRecord eq8_invariance(const Problem& pb, int layer, double alpha) {
  require_bn_layer(pb, layer, "eq8.invariance");
  const Mat<double> rhs = ref::forward(pb.spec, pb.params, pb.X).output();
  const Mat<double> lhs =
      ref::forward(pb.spec, pb.params.scaled_layer(layer, alpha), pb.X).output();
  CheckRecord r{.id = "eq8.invariance", .paper_ref = "Eq. 8",
                .statement = "f(alpha theta_l) = f(theta_l), BN layer",
                .network = fmt::format("{} layer {} alpha={}", pb.spec.describe(), layer + 1, alpha)};
  return finish_vectors(r, lhs, rhs);
}

CheckRecord eq8_gradient_scaling(const Problem& pb, int layer, double alpha) {
  require_bn_layer(pb, layer, "eq8.gradient_scaling");
  const Vec<double> lhs = alpha * layer_grad(pb, pb.params.scaled_layer(layer, alpha), layer);
  const Vec<double> rhs = layer_grad(pb, pb.params, layer);
  CheckRecord r{.id = "eq8.gradient_scaling", .paper_ref = "Eq. 8 (consequence)",
                .statement = "alpha grad L(alpha theta_l) = grad L(theta_l)",
                .network = fmt::format("{} layer {} alpha={}", pb.spec.describe(), layer + 1, alpha)};
  return finish_vectors(r, lhs, rhs);
}

CheckRecord eq8_gradient_orthogonal(const Problem& pb, int layer) {
  require_bn_layer(pb, layer, "eq8.gradient_scaling");
  const Vec<double> theta = layer_theta(pb.spec, pb.params, layer);
  const Vec<double> g = layer_grad(pb, pb.params, layer);
  CheckRecord r{.id = "eq8.gradient_scaling", .paper_ref = "Eq. 8 (consequence)",
                .statement = "theta_l^T grad L = 0 (rel_err = cosine)",
                .network = fmt::format("{} layer {} orthogonality", pb.spec.describe(), layer + 1)};
  r.lhs = theta.dot(g);
  r.rhs = 0;
  r.rel_err = std::abs(r.lhs) / (theta.norm() * g.norm());
  return finish(r);
}

CheckRecord eq9_effective_lr(const Problem& pb, int layer) {
  return effective_lr(pb, layer, 2.0, "eq9.effective_lr", Outcome::holds);
}
CheckRecord eq9_wrong_power_control(const Problem& pb, int layer) {
  return effective_lr(pb, layer, 1.0, "eq9.wrong_power", Outcome::fails);
}

CheckRecord eq15_curvature_scaling(const Problem& pb, int layer, Curvature c, double scale) {
  require_bn_layer(pb, layer, "eq15.curvature_scaling");
  const Mat<double> lhs =
      scale * scale * curvature_block(pb, pb.params.scaled_layer(layer, scale), layer, c);
  const Mat<double> rhs = curvature_block(pb, pb.params, layer, c);
  CheckRecord r{.id = "eq15.curvature_scaling", .paper_ref = "Eq. 13 (v1) / 15 (CR)",
                .statement = "c^2 C(c theta_l) = C(theta_l), layer block",
                .network = fmt::format("{} layer {} {} c={}", pb.spec.describe(), layer + 1,
                                       to_string(c), scale)};
  return finish_vectors(r, lhs, rhs);
}

CheckRecord eq16_effective_damping(const Problem& pb, int layer, Curvature c) {
  return effective_damping(pb, layer, c, true, "eq16.effective_damping", Outcome::holds);
}
CheckRecord eq16_plain_damping_control(const Problem& pb, int layer, Curvature c) {
  return effective_damping(pb, layer, c, false, "eq16.plain_damping", Outcome::fails);
}

}  // namespace wdlab::theory

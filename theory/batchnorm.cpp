// Eq. 8, 9 (Mechanism I: effective learning rate) and Eq. 15, 16 (Mechanism III: effective
// damping) on a BN layer θ_l. Only θ_l moves; the other layers are held fixed.
#include <array>
#include <cmath>

#include <fmt/format.h>

#include "common/errors.hpp"
#include "reference/mlp/curvature.hpp"
#include "reference/mlp/jacobian.hpp"
#include "reference/ops/loss.hpp"
#include "theory/checks.hpp"
#include "theory/matfree.hpp"

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


void require_bn_layer(const Problem& pb, int layer, const std::string& check) {
  if (layer < 0 || layer >= pb.spec.num_layers() || !pb.spec.has_bn(layer))
    throw PreconditionError(fmt::format("{}: layer {} is not followed by BN in {}", check,
                                        layer + 1, pb.spec.describe()));
}

/// Throws PreconditionError (a skipped row) when the loss does not depend on layer l beyond
/// rounding: ‖∇_{θ_l}L‖·‖θ_l‖ ≤ 1e-10·max(1, L) (e.g. BN after a layer with one input, where
/// z = sign(w)·x̂ ignores the weights, or a BN network whose ReLUs are all dead downstream);
/// every BN statement then compares rounding noise with rounding noise.
void require_layer_matters(const Problem& pb, int layer, const std::string& check);

Vec<double> layer_theta(const MlpSpec& s, const Params& p, int l) {
  return p.flatten().segment(s.param_offset(l), s.layer_param_count(l));
}

Params with_layer(const MlpSpec& s, const Params& p, int l, const Vec<double>& t) {
  Vec<double> theta = p.flatten();
  theta.segment(s.param_offset(l), s.layer_param_count(l)) = t;
  return Params::unflatten(s, theta);
}

void require_layer_matters(const Problem& pb, int layer, const std::string& check) {
  const auto fw = ref::forward(pb.spec, pb.params, pb.X);
  const double L = mean_cross_entropy(fw.output(), pb.labels);
  const Vec<double> g = ref::backward(pb.spec, pb.params, fw, cross_entropy_cotangent(fw.output(), pb.labels))
                            .flatten()
                            .segment(pb.spec.param_offset(layer), pb.spec.layer_param_count(layer));
  const double sens = g.norm() * layer_theta(pb.spec, pb.params, layer).norm();
  if (!(sens > 1e-10 * std::max(1.0, L)))
    throw PreconditionError(fmt::format(
        "{}: the loss does not depend on layer {} beyond rounding (|grad| |theta_l| = {:.2g}, loss "
        "{:.3g}): nothing to compare",
        check, layer + 1, sens, L));
}

/// ∇_{θ_l} of the mean cross-entropy, by backprop.
Vec<double> layer_grad(const Problem& pb, const Params& p, int l) {
  const auto fw = ref::forward(pb.spec, p, pb.X);
  const auto g = ref::backward(pb.spec, p, fw, cross_entropy_cotangent(fw.output(), pb.labels));
  return g.flatten().segment(pb.spec.param_offset(l), pb.spec.layer_param_count(l));
}

/// The layer-l block of the curvature C at parameters p as a dense matrix: only the K-FAC blocks
/// (Ā ⊗ S, small); the exact Fisher/GN blocks are used matrix-free (block_times).
Mat<double> kfac_curvature_block(const Problem& pb, const Params& p, int l, Curvature c) {
  const auto kind = c == Curvature::kfac_gauss_newton ? ref::KfacCurvature::gn_exact
                                                      : ref::KfacCurvature::fisher_exact;
  return ref::kfac_block(pb.spec, ref::kfac_factors(pb.spec, p, pb.X, kind)[l], l);
}

bool is_kfac(Curvature c) {
  return c == Curvature::kfac_gauss_newton || c == Curvature::kfac_fisher;
}

/// vᵀ C_ll v for each v (a direction of layer l) and any of the four curvatures. Exact blocks:
/// E‖J v‖² (GN) or E (Jv)ᵀ(diag p − ppᵀ)(Jv) (Fisher = GGN), one JVP each. K-FAC: tr(Vᵀ S V Ā),
/// the factors computed once (S over the first max(1, 48/K) examples' output coordinates: BN
/// couples the examples, so each needs its own backward pass; the scaling identity holds term
/// by term, so the partial sum is as exact as the full one).
Vec<double> block_quadratics(const Problem& pb, const Params& p, int l, Curvature c,
                             const std::vector<Vec<double>>& vs) {
  Vec<double> out(Eigen::Index(vs.size()));
  const auto fw = ref::forward(pb.spec, p, pb.X);
  if (is_kfac(c)) {
    const auto kind = c == Curvature::kfac_gauss_newton ? ref::KfacCurvature::gn_exact
                                                        : ref::KfacCurvature::fisher_exact;
    Mat<double> abar = fw.a[l];
    if (pb.spec.bias == Bias::on) {
      abar.conservativeResize(abar.rows() + 1, Eigen::NoChange);
      abar.row(abar.rows() - 1).setOnes();
    }
    const Mat<double> A = abar * abar.transpose() / double(pb.X.cols());
    const Mat<double> S = kfac_S_partial(pb.spec, p, pb.X, l, kind, std::max(1, 48 / pb.spec.output_dim));
    for (std::size_t i = 0; i < vs.size(); ++i) {
      const Params V = layer_only(pb.spec, l, vs[i]);
      Mat<double> Wb = V.W[l];
      if (pb.spec.bias == Bias::on) {
        Wb.conservativeResize(Eigen::NoChange, Wb.cols() + 1);
        Wb.col(Wb.cols() - 1) = V.b[l];
      }
      out(Eigen::Index(i)) = (Wb.transpose() * S * Wb * A).trace();
    }
    return out;
  }
  const Mat<double> probs = ref::softmax_fprop<double>(fw.output());
  // J v for every v in one forward-mode pass from layer l: the tangents V a_{l−1} side by side.
  const Eigen::Index N = pb.X.cols();
  Mat<double> D(pb.spec.out_dim(l), Eigen::Index(vs.size()) * N);
  for (std::size_t i = 0; i < vs.size(); ++i) {
    const Params V = layer_only(pb.spec, l, vs[i]);
    auto Di = D.middleCols(Eigen::Index(i) * N, N);
    Di = V.W[l] * fw.a[l];
    if (pb.spec.bias == Bias::on) Di.colwise() += V.b[l];
  }
  const Mat<double> JV = propagate_tangents(pb.spec, p, fw, l, std::move(D));
  for (std::size_t i = 0; i < vs.size(); ++i) {
    const Mat<double> Jv = JV.middleCols(Eigen::Index(i) * N, N);
    out(Eigen::Index(i)) = c == Curvature::gauss_newton
                               ? Jv.squaredNorm() / double(N)
                               : Jv.cwiseProduct(softmax_hessian_times(probs, Jv)).sum() / double(N);
  }
  return out;
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
  require_layer_matters(pb, layer, id);
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

/// The scale-invariant group Eq. 16 is checked on: the whole layer when it has at most 64
/// weights, otherwise unit 1's incoming weights (BN normalizes each unit separately, so one
/// unit's row is scale invariant by itself). Indices into θ.
std::vector<int> damping_group(const MlpSpec& s, int l) {
  std::vector<int> idx;
  const int off = s.param_offset(l), in = s.in_dim(l), out = s.out_dim(l);
  if (in * out <= 64) {
    for (int q = 0; q < in * out; ++q) idx.push_back(off + q);
  } else {
    for (int c = 0; c < in; ++c) idx.push_back(off + c * out);  // W(0, c), column-major
  }
  return idx;
}

/// The group block of C at p as a dense n×n matrix. K-FAC from the reference factors (S_ii·Ā for
/// one unit, Ā ⊗ S for the whole layer); exact curvatures from the n JVPs J e_q (`J`, the
/// columns of jvp_columns at p): G = E[JᵀJ], F = E[Jᵀ(diag p − ppᵀ)J].
Mat<double> group_block(const Problem& pb, const Params& p, int l, const std::vector<int>& idx, Curvature c,
                        const Mat<double>& J) {
  const int n = int(idx.size());
  if (is_kfac(c)) {
    const Mat<double> B = kfac_curvature_block(pb, p, l, c);
    Mat<double> out(n, n);
    const int off = pb.spec.param_offset(l);
    for (int i = 0; i < n; ++i)
      for (int j = 0; j < n; ++j) out(i, j) = B(idx[i] - off, idx[j] - off);
    return out;
  }
  const double N = double(pb.X.cols());
  if (c == Curvature::gauss_newton) return J.transpose() * J / N;  // C_ij = E (J e_i)·(J e_j)
  const auto fw = ref::forward(pb.spec, p, pb.X);
  const Mat<double> probs = ref::softmax_fprop<double>(fw.output());
  const Eigen::Index K = pb.spec.output_dim;
  Mat<double> HJ(J.rows(), n);
  for (int q = 0; q < n; ++q)
    HJ.col(q) = softmax_hessian_times(probs, J.col(q).reshaped(K, pb.X.cols())).reshaped();
  return J.transpose() * HJ / N;  // C_ij = E (J e_i)ᵀ H (J e_j)
}

Vec<double> gather(const Vec<double>& v, const std::vector<int>& idx) {
  Vec<double> out(Eigen::Index(idx.size()));
  for (std::size_t i = 0; i < idx.size(); ++i) out(Eigen::Index(i)) = v(idx[i]);
  return out;
}

/// Which damping the step on θ̂ takes: Eq. 16's λ‖θ‖², or the plain λ (the control).
enum class DampingOnHat { scaled_by_norm, plain };

CheckRecord effective_damping(const Problem& pb, int layer, Curvature c, DampingOnHat damping,
                              std::string id, Outcome expect, DampingColumns* shared) {
  require_bn_layer(pb, layer, id);
  require_layer_matters(pb, layer, id);
  const auto idx = damping_group(pb.spec, layer);
  const Vec<double> theta_all = pb.params.flatten();
  const Vec<double> theta = gather(theta_all, idx);
  const double rho = theta.norm();
  const Vec<double> th = theta / rho;
  Vec<double> theta_hat_all = theta_all;
  for (std::size_t i = 0; i < idx.size(); ++i) theta_hat_all(idx[i]) = th(Eigen::Index(i));
  const Params p_hat = Params::unflatten(pb.spec, theta_hat_all);
  const Eigen::Index n = theta.size();
  const bool whole = int(idx.size()) == pb.spec.layer_param_count(layer);
  const bool scaled = damping == DampingOnHat::scaled_by_norm;
  CheckRecord r{.id = std::move(id), .paper_ref = "Eq. 14 (v1) / 16 (CR), App. D",
                .statement = scaled ? "damped NG step on theta_hat has damping lambda|theta|^2 + O(eta^2)"
                                    : "control: damping lambda (unscaled) leaves an O(eta) error",
                .network = fmt::format("{} layer {}{} {} |theta|={:.3g}", pb.spec.describe(), layer + 1,
                                       whole ? "" : " unit 1", to_string(c), rho),
                .expect = expect};
  // The exact blocks' Jacobian columns at θ and θ̂: from `shared` when an earlier row of this
  // network and layer computed them (K-FAC needs none).
  DampingColumns local;
  DampingColumns& cols = shared != nullptr ? *shared : local;
  if (cols.network != pb.spec.describe() || cols.seed != pb.seed || cols.layer != layer ||
      cols.theta.size() != theta_all.size() || cols.theta != theta_all)
    cols = DampingColumns{.network = pb.spec.describe(), .seed = pb.seed, .theta = theta_all, .layer = layer};
  if (!is_kfac(c) && cols.at_theta.size() == 0) {
    cols.at_theta = jvp_columns(pb.spec, pb.params, ref::forward(pb.spec, pb.params, pb.X), layer, idx);
    cols.at_theta_hat = jvp_columns(pb.spec, p_hat, ref::forward(pb.spec, p_hat, pb.X), layer, idx);
  }
  const Mat<double> C = group_block(pb, pb.params, layer, idx, c, cols.at_theta);
  const Mat<double> C_hat = group_block(pb, p_hat, layer, idx, c, cols.at_theta_hat);
  // λ comparable to the curvature so that both terms of C(θ̂) + λρ²I matter: C(θ̂)'s mean
  // eigenvalue.
  const double mean_eig = C_hat.trace() / double(n);
  if (!(mean_eig > 0))
    return skipped_row(r.id, r.network, expect,
                       fmt::format("{}: the curvature block is 0 (dead group), the damping has nothing "
                                   "to compare with", r.id));
  const double lambda = mean_eig / (rho * rho);
  const double eff = scaled ? lambda * rho * rho : lambda;
  const Mat<double> I = Mat<double>::Identity(n, n);
  auto grad_of = [&](const Params& p) {
    const auto fw = ref::forward(pb.spec, p, pb.X);
    return gather(ref::backward(pb.spec, p, fw, cross_entropy_cotangent(fw.output(), pb.labels)).flatten(), idx);
  };
  const Vec<double> step = (C + lambda * I).ldlt().solve(grad_of(pb.params));
  const Vec<double> step_hat = (C_hat + eff * I).ldlt().solve(grad_of(p_hat));
  if (!(step.norm() > 0))
    return skipped_row(r.id, r.network, expect, r.id + ": the gradient of the group is 0");
  const auto e = eta2_sequence(
      rho / step.norm(), [&](double eta) -> Vec<double> { return theta - eta * step; },
      [&](double eta) -> Vec<double> { return th - eta * step_hat; });
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
  require_layer_matters(pb, layer, "eq8.gradient_scaling");
  const Vec<double> lhs = alpha * layer_grad(pb, pb.params.scaled_layer(layer, alpha), layer);
  const Vec<double> rhs = layer_grad(pb, pb.params, layer);
  CheckRecord r{.id = "eq8.gradient_scaling", .paper_ref = "Eq. 8 (consequence)",
                .statement = "alpha grad L(alpha theta_l) = grad L(theta_l)",
                .network = fmt::format("{} layer {} alpha={}", pb.spec.describe(), layer + 1, alpha)};
  return finish_vectors(r, lhs, rhs);
}

CheckRecord eq8_gradient_orthogonal(const Problem& pb, int layer) {
  require_bn_layer(pb, layer, "eq8.gradient_scaling");
  require_layer_matters(pb, layer, "eq8.gradient_scaling");
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
  require_layer_matters(pb, layer, "eq15.curvature_scaling");
  // Quadratic forms of the layer block along a few random directions of the layer (and θ_l's
  // own direction): c² vᵀC(cθ_l)v against vᵀC(θ_l)v; the block itself is never formed.
  const Params scaled = pb.params.scaled_layer(layer, scale);
  const Eigen::Index n = pb.spec.layer_param_count(layer);
  constexpr int n_dirs = 3;
  std::vector<Vec<double>> vs;
  for (int i = 0; i < n_dirs; ++i)
    vs.push_back(random_direction(pb.spec, pb.seed, 20 + i, layer).flatten().segment(pb.spec.param_offset(layer), n));
  const Vec<double> lhs = scale * scale * block_quadratics(pb, scaled, layer, c, vs);
  const Vec<double> rhs = block_quadratics(pb, pb.params, layer, c, vs);
  CheckRecord r{.id = "eq15.curvature_scaling", .paper_ref = "Eq. 13 (v1) / 15 (CR)",
                .statement = "c^2 v^T C(c theta_l) v = v^T C(theta_l) v, layer block, random v",
                .network = fmt::format("{} layer {} {} c={}", pb.spec.describe(), layer + 1,
                                       to_string(c), scale)};
  return finish_vectors(r, lhs, rhs);
}

CheckRecord eq16_effective_damping(const Problem& pb, int layer, Curvature c, DampingColumns* shared) {
  return effective_damping(pb, layer, c, DampingOnHat::scaled_by_norm, "eq16.effective_damping", Outcome::holds, shared);
}
CheckRecord eq16_plain_damping_control(const Problem& pb, int layer, Curvature c, DampingColumns* shared) {
  return effective_damping(pb, layer, c, DampingOnHat::plain, "eq16.plain_damping", Outcome::fails, shared);
}

}  // namespace wdlab::theory

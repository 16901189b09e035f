// Lemma 1, Lemma 2, Theorem 1 and App. E (Mechanism II: the K-FAC Gauss-Newton norm).
#include <cmath>

#include <fmt/format.h>

#include "common/errors.hpp"
#include "reference/mlp/curvature.hpp"
#include "reference/mlp/jacobian.hpp"
#include "theory/checks.hpp"
#include "theory/matfree.hpp"

namespace wdlab::theory {


namespace {

Vec<double> unit(const Vec<double>& v) {
  const double n = v.norm();
  return n > 0 ? Vec<double>(v / n) : v;
}

double mean_sq_output(const Problem& pb) {
  const auto fw = ref::forward(pb.spec, pb.params, pb.X);
  return fw.output().colwise().squaredNorm().mean();  // E‖f‖²
}

/// J_θ θ for every example, K×N, by forward mode (one JVP along θ itself).
Mat<double> jtheta_times_theta(const Problem& pb) {
  const auto fw = ref::forward(pb.spec, pb.params, pb.X);
  return jvp_theta(pb.spec, pb.params, fw, pb.params);
}

/// Reverse mode, per layer: M_l(k, n) = (J_{θ_l,n} θ_l)_k, from K backward passes (cotangent
/// e_k in every column), each read off per example and per layer (no BN: examples independent).
std::vector<Mat<double>> per_layer_reverse(const Problem& pb) {
  const auto fw = ref::forward(pb.spec, pb.params, pb.X);
  const int K = pb.spec.output_dim, N = int(pb.X.cols());
  std::vector<Mat<double>> M(pb.spec.num_layers(), Mat<double>(K, N));
  const std::vector<Params> theta{pb.params};
  const ReverseDots reverse(pb.spec, pb.params, fw, theta);
  for (int k = 0; k < K; ++k) {
    Mat<double> U = Mat<double>::Zero(K, N);
    U.row(k).setOnes();
    const Mat<double> d = reverse(U)[0];
    for (int l = 0; l < pb.spec.num_layers(); ++l) M[l].row(k) = d.row(l);
  }
  return M;
}

/// The K cotangents e_k (in every column) side by side, K × (K·N), for layer_cotangents.
Mat<double> ones_cotangents(int K, int N) {
  Mat<double> U = Mat<double>::Zero(K, Eigen::Index(K) * N);
  for (int k = 0; k < K; ++k) U.block(k, Eigen::Index(k) * N, 1, N).setOnes();
  return U;
}

/// J_x (K×d) of a linear network by reverse mode: row k is the input cotangent of e_k
/// (the same for every example; example 0's).
Mat<double> jx_reverse(const Problem& pb) {
  const auto fw = ref::forward(pb.spec, pb.params, pb.X);
  const int K = pb.spec.output_dim, N = int(pb.X.cols());
  Mat<double> J(K, pb.spec.input_dim);
  const auto ds0 = layer_cotangents(pb.spec, pb.params, fw, ones_cotangents(K, N), 0, KeepLayers::lowest)[0];
  for (int k = 0; k < K; ++k)  // the input cotangent W_1ᵀ ds_1 of block k, example 0's column
    J.row(k) = (pb.params.W[0].transpose() * ds0.col(Eigen::Index(k) * N)).transpose();
  return J;
}

CheckRecord jtheta_record(const Problem& pb, std::string id, Outcome expect) {
  const Mat<double> lhs = jtheta_times_theta(pb);
  const Mat<double> rhs =
      double(pb.spec.depth + 1) * ref::forward(pb.spec, pb.params, pb.X).output();
  CheckRecord r{.id = std::move(id), .paper_ref = "Lemma 1, Eq. 10",
                .statement = "J_theta theta = (L+1) f(x)", .network = pb.spec.describe()};
  r.expect = expect;
  return finish_vectors(r, lhs, rhs);
}

double kfac_gn_norm(const Problem& pb) {
  // No BN here (the callers require it): one backward pass per output coordinate k.
  const auto f = kfac_factors_batched(pb.spec, pb.params, pb.X, ref::KfacCurvature::gn_exact);
  return ref::kfac_norm(pb.spec, pb.params, f);
}

CheckRecord kfac_record(const Problem& pb, std::string id, Outcome expect) {
  CheckRecord r{.id = std::move(id), .paper_ref = "Lemma 2, Eq. 11",
                .statement = "theta^T G_KFAC theta = (L+1) E|f|^2", .network = pb.spec.describe()};
  r.lhs = kfac_gn_norm(pb);
  r.rhs = double(pb.spec.depth + 1) * mean_sq_output(pb);
  r.rel_err = rel_scalar(r.lhs, r.rhs);
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
  // θᵀGθ = E‖J_θθ‖² (forward mode); ‖J_x‖²_F by reverse mode.
  r.lhs = kfac ? kfac_gn_norm(pb) : jtheta_times_theta(pb).colwise().squaredNorm().mean();
  r.rhs = (kfac ? L1 : L1 * L1) * jx_reverse(pb).squaredNorm();
  r.rel_err = rel_scalar(r.lhs, r.rhs);
  r.expect = expect;
  return finish(r);
}

}  // namespace

CheckRecord lemma1_jx(const Problem& pb) {
  require_no_bias(pb.spec, "lemma1.jx");
  require_no_bn(pb.spec, "lemma1.jx");
  // (J_x x)_{kn} by reverse mode: the input cotangent of e_k in every column, dotted with x_n.
  const auto fw = ref::forward(pb.spec, pb.params, pb.X);
  const int K = pb.spec.output_dim, N = int(pb.X.cols());
  Mat<double> lhs(K, N);
  // The K passes side by side; the input cotangent of pass k is W_1ᵀ ds_1 (its block).
  const Mat<double> dX = pb.params.W[0].transpose() *
                         layer_cotangents(pb.spec, pb.params, fw, ones_cotangents(K, N), 0, KeepLayers::lowest)[0];
  for (int k = 0; k < K; ++k) lhs.row(k) = dX.middleCols(Eigen::Index(k) * N, N).cwiseProduct(pb.X).colwise().sum();
  const Mat<double> rhs = fw.output();
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
  const auto M = per_layer_reverse(pb);
  const Mat<double> f = ref::forward(pb.spec, pb.params, pb.X).output();
  CheckRecord r{.id = "lemma1.per_layer", .paper_ref = "Lemma 1 (App. B)",
                .statement = "J_{W_l} vec(W_l) = f(x) for every layer l"};
  int worst = 0;
  for (int l = 0; l < pb.spec.num_layers(); ++l) {
    const double e = rel_error(M[l], f);
    if (l == 0 || e > r.rel_err) {
      r.rel_err = e;
      r.lhs = M[l].norm();
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
  const double L1 = pb.spec.depth + 1;
  CheckRecord r{.id = "lemma2.gn", .paper_ref = "Lemma 2, Eq. 11",
                .statement = "theta^T G theta = (L+1)^2 E|f|^2 (G v by JVP, no P x P matrix)",
                .network = pb.spec.describe()};
  r.lhs = jtheta_times_theta(pb).colwise().squaredNorm().mean();  // θᵀGθ = E‖J_θθ‖²
  r.rhs = L1 * L1 * mean_sq_output(pb);
  r.rel_err = rel_scalar(r.lhs, r.rhs);
  return finish(r);
}

CheckRecord lemma2_blockdiag(const Problem& pb) {
  require_no_bias(pb.spec, "lemma2.blockdiag");
  require_no_bn(pb.spec, "lemma2.blockdiag");
  CheckRecord r{.id = "lemma2.blockdiag", .paper_ref = "Lemma 2 (App. C)",
                .statement = "sum_l theta_l^T G_ll theta_l = (L+1) E|f|^2 (reverse mode per layer)",
                .network = pb.spec.describe()};
  const double N = double(pb.X.cols());
  for (const auto& M : per_layer_reverse(pb)) r.lhs += M.squaredNorm() / N;  // E‖J_{θ_l}θ_l‖²
  r.rhs = double(pb.spec.depth + 1) * mean_sq_output(pb);
  r.rel_err = rel_scalar(r.lhs, r.rhs);
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
  CheckRecord r{.id = "appE.gradient", .paper_ref = "App. E, Eq. 18-19 (v1)",
                .statement = "v.grad |theta|_G^2 = 2(L+1) v^T G theta (directional central diff.)",
                .network = pb.spec.describe(), .tol_kind = tol::Kind::finite_difference};
  // φ(θ) = θᵀ G(θ) θ = E‖J_θ(θ) θ‖²: one JVP along θ itself, G never formed.
  auto phi = [&](const Vec<double>& t) {
    const auto p = Params::unflatten(pb.spec, t);
    const auto fw = ref::forward(pb.spec, p, pb.X);
    return jvp_theta(pb.spec, p, fw, p).colwise().squaredNorm().mean();
  };
  constexpr int n_dirs = 3;
  std::vector<Vec<double>> dirs;
  for (int i = 0; i < n_dirs; ++i) dirs.push_back(unit(random_direction(pb.spec, pb.seed, i).flatten()));
  const auto fd = directional_fd(pb, dirs, phi);
  if (!fd.reason.empty())
    return skipped_row(r.id, r.network, r.expect, "appE.gradient: " + fd.reason);
  // rhs: 2(L+1) vᵀGθ with Gθ = (1/N) Σ_n J_nᵀ(J_nθ) by forward then reverse mode.
  const auto fw = ref::forward(pb.spec, pb.params, pb.X);
  const Vec<double> Gtheta = gn_times(pb.spec, pb.params, fw, pb.params);
  Vec<double> rhs(n_dirs);
  for (int i = 0; i < n_dirs; ++i) rhs(i) = 2.0 * double(pb.spec.depth + 1) * dirs[i].dot(Gtheta);
  if (!set_fd_tolerance(r, fd, rhs))
    return skipped_row(r.id, r.network, r.expect, r.id + ": " + r.reason);
  return finish_vectors(r, fd.deriv, rhs);
}

}  // namespace wdlab::theory

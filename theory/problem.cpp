#include "theory/problem.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

#include <fmt/format.h>

#include "common/errors.hpp"
#include "common/philox.hpp"
#include "common/tolerances.hpp"
#include "reference/mlp/curvature.hpp"
#include "reference/ops/loss.hpp"
#include "theory/record.hpp"

namespace wdlab::theory {

std::string to_string(Outcome o) {
  switch (o) {
    case Outcome::holds: return "holds";
    case Outcome::fails: return "fails";
    case Outcome::skipped: return "skipped";
  }
  return "?";
}

namespace {

Mat<double> gaussian_matrix(int rows, int cols, std::uint64_t seed, std::uint64_t step) {
  Mat<double> M(rows, cols);
  for (int j = 0; j < cols; ++j)
    for (int i = 0; i < rows; ++i)
      M(i, j) = rng::normal(seed, rng::Purpose::theory, step, std::uint64_t(j) * rows + i);
  return M;
}

/// Per-example smallest |z| over the hidden pre-activations.
Vec<double> example_margins(const MlpSpec& spec, const ref::MlpParams<double>& p,
                            const Mat<double>& X) {
  const auto fw = ref::forward(spec, p, X);
  Vec<double> m = Vec<double>::Constant(X.cols(), std::numeric_limits<double>::infinity());
  for (int l = 0; l < spec.depth; ++l) m = m.cwiseMin(fw.z[l].cwiseAbs().colwise().minCoeff().transpose());
  return m;
}

}  // namespace

Problem make_problem(const MlpSpec& spec, std::uint64_t seed, int batch, InputKind inputs) {
  spec.validate();
  if (batch < 1) throw UsageError("batch", fmt::format("must be >= 1, got {}", batch));
  Problem pb;
  pb.spec = spec;
  pb.seed = seed;
  pb.params = ref::init_params<double>(spec, seed, ref::Init::glorot_uniform,
                                       spec.bias == Bias::on ? 0.5 : 0.0);
  const int d = spec.input_dim;
  switch (inputs) {
    case InputKind::gaussian:
      pb.X = gaussian_matrix(d, batch, seed, 1);
      break;
    case InputKind::whitened: {
      if (batch < d)
        throw PreconditionError(fmt::format("whitened inputs need batch >= input_dim ({} < {})",
                                            batch, d));
      Mat<double> Z = gaussian_matrix(d, batch, seed, 1);
      Z.colwise() -= Z.rowwise().mean();  // exact zero mean
      // With C = Z Zᵀ/N = L Lᵀ, X = L⁻¹ Z has X Xᵀ/N = L⁻¹ C L⁻ᵀ = I.
      const Mat<double> C = Z * Z.transpose() / double(batch);
      pb.X = Eigen::LLT<Mat<double>>(C).matrixL().solve(Z);
      pb.X.colwise() -= pb.X.rowwise().mean();
      break;
    }
    case InputKind::correlated: {
      const Mat<double> M = gaussian_matrix(d, d, seed, 2) + 2.0 * Mat<double>::Ones(d, d);
      pb.X = M * gaussian_matrix(d, batch, seed, 1);
      break;
    }
    case InputKind::kink_free: {
      const Mat<double> cand = gaussian_matrix(d, 4 * batch, seed, 1);
      const Vec<double> m = example_margins(spec, pb.params, cand);
      std::vector<int> order(cand.cols());
      std::iota(order.begin(), order.end(), 0);
      std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return m(a) > m(b); });
      pb.X.resize(d, batch);
      for (int j = 0; j < batch; ++j) pb.X.col(j) = cand.col(order[j]);
      break;
    }
  }
  pb.labels.resize(batch);
  for (int n = 0; n < batch; ++n)
    pb.labels(n) = int(rng::below(seed, rng::Purpose::theory, 3, n, std::uint32_t(spec.output_dim)));
  return pb;
}

double mean_cross_entropy(const Mat<double>& logits, const Eigen::VectorXi& labels) {
  return ref::softmax_cross_entropy<double>(logits, labels).loss;
}

Mat<double> cross_entropy_cotangent(const Mat<double>& logits, const Eigen::VectorXi& labels) {
  return ref::softmax_cross_entropy<double>(logits, labels).dlogits;  // (p − e_y)/N
}

void require_away_from_kinks(const Problem& pb, double margin, const std::string& check) {
  if (pb.spec.activation == Activation::linear) return;
  const double m = example_margins(pb.spec, pb.params, pb.X).minCoeff();
  if (!(m >= margin))
    throw PreconditionError(fmt::format(
        "{}: a ReLU pre-activation is {:.3g} from its kink, finite differences need >= {:.3g}",
        check, m, margin));
}

void require_no_bias(const MlpSpec& s, const std::string& check) {
  if (s.bias == Bias::on) throw PreconditionError(check + ": the statement assumes no biases");
}
void require_no_bn(const MlpSpec& s, const std::string& check) {
  if (s.norm == Norm::batchnorm) throw PreconditionError(check + ": the statement assumes no BN");
}
void require_linear(const MlpSpec& s, const std::string& check) {
  if (s.activation != Activation::linear)
    throw PreconditionError(check + ": the statement assumes a deep linear network");
}

void require_whitened(const Mat<double>& X, const std::string& check) {
  const double n = double(X.cols());
  const double mean_err = X.rowwise().mean().norm();
  const Mat<double> cov = X * X.transpose() / n;
  const double cov_err = (cov - Mat<double>::Identity(X.rows(), X.rows())).norm();
  const double t = tol::of(tol::Kind::exact_double);
  if (!(mean_err <= t && cov_err <= t))
    throw PreconditionError(fmt::format(
        "{}: inputs are not whitened: |E[x]| = {:.3g}, |Cov(x) - I|_F = {:.3g} (need <= {:.0e})",
        check, mean_err, cov_err, t));
}

double rel_error(const Mat<double>& a, const Mat<double>& b) {
  const double nb = b.norm(), na = a.norm();
  if (nb > 0) return (a - b).norm() / nb;
  return na > 0 ? 1.0 : 0.0;  // both exactly 0: a match; only b = 0: ‖a − b‖/‖a‖ = 1
}

double rel_scalar(double a, double b) {
  if (b != 0) return std::abs(a - b) / std::abs(b);
  return a != 0 ? 1.0 : 0.0;
}

CheckRecord skipped_row(std::string id, std::string network, Outcome expect, std::string reason) {
  CheckRecord r;
  r.id = std::move(id);
  r.network = std::move(network);
  r.expect = expect;
  r.outcome = Outcome::skipped;
  r.reason = std::move(reason);
  return r;
}

CheckRecord finish_vectors(CheckRecord r, const Eigen::MatrixXd& lhs, const Eigen::MatrixXd& rhs) {
  r.lhs = lhs.norm();
  r.rhs = rhs.norm();
  r.rel_err = rel_error(lhs, rhs);
  return finish(r);
}

CheckRecord finish(CheckRecord r) {
  if (r.expect == Outcome::fails && r.lhs == 0 && r.rhs == 0)
    return skipped_row(r.id, r.network, r.expect,
                       r.id + ": both sides are exactly 0 (the network's output is identically 0, every "
                              "path through a ReLU is dead): a control has nothing to show");
  r.tol = r.derived_tol > 0 ? r.derived_tol : tol::of(r.tol_kind);
  if (r.tol_basis.empty()) r.tol_basis = "table";
  r.outcome = (r.rel_err <= r.tol) ? Outcome::holds : Outcome::fails;  // NaN compares false
  return r;
}

}  // namespace wdlab::theory

// The curvature matrices of Sec. 2 (Fisher = generalized GN; Fisher = GN for squared error;
// sampled-target Fisher) and the weight-decay update as a C-norm step (Eq. 7).
#include <array>
#include <cmath>

#include <fmt/format.h>

#include "common/errors.hpp"
#include "reference/curvature.hpp"
#include "reference/jacobian.hpp"
#include "reference/ops/loss.hpp"
#include "theory/checks.hpp"

namespace wdlab::theory {

CheckRecord fisher_ggn(const Problem& pb) {
  const Mat<double> lhs = ref::fisher_exact_ce(pb.spec, pb.params, pb.X);
  const auto J = ref::jacobian_theta(pb.spec, pb.params, pb.X, ref::JacobianMethod::forward_mode);
  const Mat<double> probs = ref::softmax_fprop<double>(ref::forward(pb.spec, pb.params, pb.X).output());
  const Mat<double> rhs = ref::generalized_gauss_newton_ce(J, probs);
  CheckRecord r{.id = "fisher.ggn", .paper_ref = "Sec. 2, Eq. 4 (Martens 2014)",
                .statement = "F = E[J^T (diag p - p p^T) J], softmax CE",
                .network = pb.spec.describe()};
  return finish_vectors(r, lhs, rhs);
}

CheckRecord fisher_squared_loss(const Problem& pb) {
  const Mat<double> lhs = ref::fisher_exact_gaussian(pb.spec, pb.params, pb.X);
  const Mat<double> rhs = ref::gauss_newton(
      ref::jacobian_theta(pb.spec, pb.params, pb.X, ref::JacobianMethod::forward_mode));
  CheckRecord r{.id = "fisher.squared_loss", .paper_ref = "Sec. 2 (Heskes 2000)",
                .statement = "F = G for squared error (Gaussian output)",
                .network = pb.spec.describe()};
  return finish_vectors(r, lhs, rhs);
}

CheckRecord fisher_monte_carlo(const Problem& pb) {
  const Mat<double> F = ref::fisher_exact_ce(pb.spec, pb.params, pb.X);
  const std::array<int, 3> sizes{100, 1000, 10000};
  constexpr int reps = 8;
  std::array<double, 3> logn{}, logerr{};
  for (int k = 0; k < 3; ++k) {
    double ms = 0;  // mean squared relative error over replications
    for (int rep = 0; rep < reps; ++rep) {
      const Mat<double> Fh =
          ref::fisher_sampled_ce(pb.spec, pb.params, pb.X, sizes[k], pb.seed, 100 * k + rep);
      ms += std::pow(rel_error(Fh, F), 2) / reps;
    }
    logn[k] = std::log10(double(sizes[k]));
    logerr[k] = 0.5 * std::log10(ms);
  }
  // Least-squares slope of log10(RMS error) against log10(n).
  const double mx = (logn[0] + logn[1] + logn[2]) / 3, my = (logerr[0] + logerr[1] + logerr[2]) / 3;
  double sxy = 0, sxx = 0;
  for (int k = 0; k < 3; ++k) {
    sxy += (logn[k] - mx) * (logerr[k] - my);
    sxx += (logn[k] - mx) * (logn[k] - mx);
  }
  CheckRecord r{.id = "fisher.monte_carlo", .paper_ref = "Sec. 2 footnote 1 (sampled targets)",
                .statement = "sampled Fisher -> exact, RMS error ~ n^(-1/2) (lhs = fitted slope)",
                .network = fmt::format("{} rms err {:.2e},{:.2e},{:.2e}", pb.spec.describe(),
                                       std::pow(10, logerr[0]), std::pow(10, logerr[1]),
                                       std::pow(10, logerr[2])),
                .tol_kind = tol::Kind::monte_carlo_slope};
  r.lhs = sxy / sxx;
  r.rhs = -0.5;
  r.rel_err = std::abs(r.lhs - r.rhs);
  return finish(r);
}

CheckRecord eq7_wd_c_norm(const Problem& pb) {
  const Vec<double> theta = pb.params.flatten();
  const Eigen::Index P = theta.size();
  // A fixed SPD C: the GN matrix at θ plus damping at a tenth of its mean eigenvalue.
  const Mat<double> G = ref::gauss_newton(
      ref::jacobian_theta(pb.spec, pb.params, pb.X, ref::JacobianMethod::backprop));
  const Mat<double> C = G + 0.1 * G.trace() / double(P) * Mat<double>::Identity(P, P);
  const double eta = 0.1, beta = 0.5;
  const double h = 1e-6 * std::max(1.0, theta.cwiseAbs().maxCoeff());
  require_away_from_kinks(pb, 1e3 * h * (1.0 + pb.X.cwiseAbs().maxCoeff()), "eq7.wd_c_norm");
  // R(θ) = L(θ) + (β/2) θᵀCθ, differentiated by central differences (function values only).
  auto R = [&](const Vec<double>& t) {
    const auto p = ref::MlpParams<double>::unflatten(pb.spec, t);
    return mean_cross_entropy(ref::forward(pb.spec, p, pb.X).output(), pb.labels) +
           0.5 * beta * t.dot(C * t);
  };
  const Vec<double> gradR = central_gradient(theta, h, R);
  const auto ldlt = C.ldlt();
  const Vec<double> lhs = -eta * ldlt.solve(gradR);  // preconditioned step on R
  const auto fw = ref::forward(pb.spec, pb.params, pb.X);
  const Vec<double> gradL =
      ref::backward(pb.spec, pb.params, fw, cross_entropy_cotangent(fw.output(), pb.labels)).flatten();
  const Vec<double> rhs = -eta * beta * theta - eta * ldlt.solve(gradL);  // Eq. 7 minus θ
  CheckRecord r{.id = "eq7.wd_c_norm", .paper_ref = "Eq. 6-7, Sec. 2",
                .statement = "WD step = preconditioned step on L + (beta/2)|theta|_C^2, C fixed",
                .network = pb.spec.describe(), .tol_kind = tol::Kind::finite_difference};
  return finish_vectors(r, lhs, rhs);
}

}  // namespace wdlab::theory

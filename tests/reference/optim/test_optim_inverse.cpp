// The inverse of one damped Kronecker factor: the eig path's eigenvalue clipping, and raised
// damping for numerically singular factors (reference/optim/damped_inverse.hpp).
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <cmath>
#include <limits>

#include "common/errors.hpp"
#include "optim_test_util.hpp"
#include "reference/optim/damped_inverse.hpp"

using namespace optim_test;

TEST_CASE("damped inverse: eig clips eigenvalues at the damping, Cholesky inverts F + dI as is") {
  // F = V diag(2, 0.5, −4e-3) Vᵀ with an orthogonal V (a Householder reflection): slightly
  // indefinite, as a factor can be after rounding. With d = 1e-2 the official eig path uses
  // max(μ + d, d) = (2.01, 0.51, 0.01); Cholesky inverts F + dI, eigenvalues (2.01, 0.51, 0.006).
  Vec<double> w(3);
  w << 1, 2, -2;
  w.normalize();
  const Mat<double> V = Mat<double>::Identity(3, 3) - 2 * w * w.transpose();
  const double mu[3] = {2.0, 0.5, -4e-3}, d = 1e-2;
  Mat<double> F = Mat<double>::Zero(3, 3), eig_want = F, chol_want = F;
  for (int k = 0; k < 3; ++k)
    for (int i = 0; i < 3; ++i)
      for (int j = 0; j < 3; ++j) {
        F(i, j) += mu[k] * V(i, k) * V(j, k);
        eig_want(i, j) += V(i, k) * V(j, k) / std::max(mu[k] + d, d);
        chol_want(i, j) += V(i, k) * V(j, k) / (mu[k] + d);
      }
  const auto e = damped_inverse(F, d, InverseMethod::eig, 0);
  const auto c = damped_inverse(F, d, InverseMethod::cholesky, 0);
  const auto ce = cmp("eig inverse, clipped", flat(e.inverse), flat(eig_want), tol::Kind::exact_double);
  const auto cc = cmp("cholesky inverse of F + dI", flat(c.inverse), flat(chol_want), tol::Kind::exact_double);
  MESSAGE(ce.line() << "\n" << cc.line());
  CHECK(ce.pass);
  CHECK(cc.pass);
  CHECK(e.raises == 0);
  CHECK(c.raises == 0);
}

TEST_CASE("damped inverse: numerically singular factors get raised damping under both methods") {
  // diag(1, 1e-20) is positive definite on paper, but its inverse would amplify by 1e20; a
  // rank-3 6×6 BBᵀ is singular. With zero damping both must be raised, never inverted as is.
  Mat<double> D = Mat<double>::Zero(2, 2);
  D.diagonal() << 1, 1e-20;
  Mat<double> B(6, 3);
  for (int i = 0; i < 6; ++i)
    for (int j = 0; j < 3; ++j) B(i, j) = unit(151, i * 3 + j);
  const Mat<double> R = B * B.transpose();
  for (auto method : {InverseMethod::cholesky, InverseMethod::eig})
    for (const Mat<double>* F : std::initializer_list<const Mat<double>*>{&D, &R}) {
      CAPTURE(to_string(method));
      CAPTURE(F->rows());
      const auto r = damped_inverse(*F, 0.0, method, 12);
      MESSAGE(fmt::format("{} {}x{}: damping 0 -> {:.3e} after {} raise(s)", to_string(method), F->rows(),
                          F->cols(), r.used, r.raises));
      CHECK(r.raises >= 1);
      CHECK(r.inverse.allFinite());
      // The first raise goes to √ε·(mean diagonal), which bounds the conditioning of F + dI by
      // about n/√ε ≈ 1e8·n instead of 1e16.
      const double eps = std::numeric_limits<double>::epsilon();
      CHECK(r.used >= std::sqrt(eps) * F->trace() / double(F->rows()));
      // The returned matrix is the inverse of F + used·I, to the accuracy its conditioning
      // allows: a backward-stable inverse has residual ‖MX − I‖_F ≲ n·κ(M)·ε.
      Mat<double> M = *F;
      M.diagonal().array() += r.used;
      const Vec<double> ev = Eigen::SelfAdjointEigenSolver<Mat<double>>(M).eigenvalues();
      const double kappa = ev.maxCoeff() / ev.minCoeff();
      const Mat<double> prod = M * r.inverse;
      const auto c = cmp("(F + used I) inverse", flat(prod), flat(Mat<double>::Identity(M.rows(), M.cols()).eval()),
                         double(M.rows()) * kappa * eps);
      MESSAGE(c.line() << "  kappa=" << kappa);
      CHECK(c.pass);
      CHECK(kappa * std::sqrt(eps) <= 10.0 * double(M.rows()));
    }
  // Past max_raises it is a NumericError, not a silent result.
  CHECK_THROWS_AS(damped_inverse(R, 0.0, InverseMethod::cholesky, 0), NumericError);
}

#include "reference/optim/damped_inverse.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>

#include <fmt/format.h>

#include "common/errors.hpp"
#include "common/optim/kfac_policy.hpp"
#include "reference/ops/gemm.hpp"

namespace wdlab::ref {

namespace {

/// (F + dI)⁻¹ by one method, or nothing when F + dI is not numerically positive definite.
template <class T>
std::optional<Mat<T>> try_inverse(const Mat<T>& F, T d, optim::InverseMethod method) {
  const T eps = std::numeric_limits<T>::epsilon();
  const Eigen::Index n = F.rows();
  Mat<T> inv;
  switch (method) {
    case optim::InverseMethod::cholesky: {
      Mat<T> M = F;
      M.diagonal().array() += d;
      Eigen::LLT<Mat<T>> llt(M);
      if (llt.info() != Eigen::Success) return std::nullopt;
      const auto piv = llt.matrixLLT().diagonal().array().square();
      if (!(piv.minCoeff() > eps * piv.maxCoeff())) return std::nullopt;
      // The n right-hand sides in column pieces on the engine's threads (the BLAS runs one
      // thread per call); the pieces depend on n only.
      inv.resize(n, n);
      const PieceCut cut = piece_cut(n);
      parallel_for(int(cut.count), [&](int i, int) {
        const Eigen::Index c0 = i * cut.size, w = std::min(cut.size, n - c0);
        inv.middleCols(c0, w) = llt.solve(Mat<T>::Identity(n, n).middleCols(c0, w));
      });
      break;
    }
    case optim::InverseMethod::eig: {
      Eigen::SelfAdjointEigenSolver<Mat<T>> es(F);
      if (es.info() != Eigen::Success) return std::nullopt;
      const Vec<T> e = (es.eigenvalues().array() + d).max(d).matrix();
      if (!(e.minCoeff() > eps * e.maxCoeff())) return std::nullopt;
      const Mat<T> scaled = es.eigenvectors() * e.cwiseInverse().asDiagonal();
      gemm(inv, scaled, es.eigenvectors().transpose());
      break;
    }
  }
  if (!inv.allFinite()) return std::nullopt;
  return inv;
}

}  // namespace

template <class T>
DampedInverse<T> damped_inverse(const Mat<T>& F, double damping, optim::InverseMethod method, int max_raises) {
  if (F.rows() != F.cols() || F.rows() == 0)
    throw InternalError(fmt::format("damped_inverse: factor is {}x{}", F.rows(), F.cols()));
  if (!F.allFinite()) throw NumericError("damped_inverse: the K-FAC factor has non-finite entries");
  if (!(std::isfinite(damping) && damping >= 0))
    throw InternalError(fmt::format("damped_inverse: damping {}", damping));
  DampedInverse<T> r;
  r.requested = r.used = damping;
  // The first raise from zero: √ε_T relative to the factor's scale (common/optim/kfac_policy.hpp).
  const double floor = optim::damping_floor<T>(double(F.trace()), int(F.rows()));
  for (;;) {
    if (auto inv = try_inverse<T>(F, T(r.used), method)) {
      r.inverse = std::move(*inv);
      return r;
    }
    if (r.raises == max_raises)
      throw NumericError(fmt::format("damped_inverse: the {}x{} factor is not positive definite "
                                     "even with damping {:.3e} after {} raises",
                                     F.rows(), F.cols(), r.used, r.raises));
    r.used = optim::raised_damping(r.used, floor);
    ++r.raises;
  }
}

template struct DampedInverse<double>;
template struct DampedInverse<float>;
template DampedInverse<double> damped_inverse(const Mat<double>&, double, optim::InverseMethod, int);
template DampedInverse<float> damped_inverse(const Mat<float>&, double, optim::InverseMethod, int);

}  // namespace wdlab::ref

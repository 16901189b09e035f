#pragma once
// The inverse of one damped Kronecker factor, (F + d·I)⁻¹ for symmetric positive semi-definite F
// (MATH.md §9.3 item 2):
//   cholesky: L Lᵀ = F + dI (Eigen LLT), inverse = (L Lᵀ)⁻¹ solved against I;
//   eig:      F = V diag(μ) Vᵀ, inverse = V diag(1/max(μᵢ + d, d)) Vᵀ (the official code's
//             POSDEF_INV_METHOD "eig": eigenvalues of F + dI clipped at ≥ d).
// F + dI counts as positive definite when the factorization succeeds, its smallest pivot
// (cholesky: diag(L)², eig: clipped eigenvalue) is above ε_T times its largest, and the inverse
// is finite. Otherwise d is raised — to max(10d, √ε_T·mean diag F) — at most max_raises times,
// then NumericError. A non-finite F throws NumericError at once. Never returns NaN.
#include "reference/eigen_types.hpp"
#include "common/optim/optim_config.hpp"

namespace wdlab::ref {

template <class T>
struct DampedInverse {
  Mat<T> inverse;
  double requested = 0;  // d asked for
  double used = 0;       // d actually added (> requested iff raises > 0)
  int raises = 0;
};

template <class T>
DampedInverse<T> damped_inverse(const Mat<T>& F, double damping, optim::InverseMethod method, int max_raises);

}  // namespace wdlab::ref

#pragma once
// K-FAC damping policy (MATH.md §9.3 item 2, §9.5): Tikhonov damping λ split between the two
// Kronecker factors of a layer by the trace-norm π-correction,
//   λ' = λ/T  (T = spatial output locations for conv, 1 for dense),
//   π  = √((tr A / dim A) / (tr S / dim S)),
//   Ã  = A + π√λ'·I,   S̃ = S + (√λ'/π)·I,
// so that T·(Ã ⊗ S̃) = T·(A ⊗ S) + (cross terms) + λ·I. A separate object from the inverse
// method and the update rule (STYLE.md #13).
#include "reference/eigen_types.hpp"

namespace wdlab::ref {

struct SplitDamping {
  double lambda_eff = 0;  // λ'
  double pi = 1;          // π (1 when either mean trace is not finite and > 0)
  double a = 0;           // π√λ', added to A
  double s = 0;           // √λ'/π, added to S
};

template <class T>
SplitDamping pi_split_damping(const Mat<T>& A, const Mat<T>& S, double lambda, int locations);

}  // namespace wdlab::ref

#pragma once
// Reference activations (Eigen, templated on the scalar; double is the oracle). Elementwise, so
// any layout works; in wdlab x is (C·H·W)×N, column n = example n.
#include "reference/eigen_types.hpp"

namespace wdlab::ref {

/// y = max(x, 0); a NaN input gives NaN (propagates, as in PyTorch).
template <class T>
void relu_fprop(const Mat<T>& x, Mat<T>& y);

/// dx = dy ⊙ 1[x > 0], from the sign of the *input* x. At x = 0 the derivative is taken as 0
/// (the subgradient PyTorch and cuDNN use); finite-difference tests keep |x| away from 0.
template <class T>
void relu_bprop(const Mat<T>& x, const Mat<T>& dy, Mat<T>& dx);

/// One entry of dy ⊙ 1[x > 0], the rule relu_bprop and BN's fused backward share: dy is read
/// whatever x is (a load only where x > 0 is a branch per element, and GCC does not vectorize the
/// loop then), and a masked entry is 0 even where dy is ±∞ or NaN.
template <class T>
inline T relu_masked(T x, T dy) {
  return x > T(0) ? dy : T(0);
}

}  // namespace wdlab::ref

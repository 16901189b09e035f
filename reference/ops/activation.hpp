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

}  // namespace wdlab::ref

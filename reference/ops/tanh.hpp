#pragma once
// Reference tanh activation (header-only; Eigen, templated on the scalar; double is the oracle).
// Elementwise, so any layout works; in wdlab x is (C·H·W)×N, column n = example n.
#include <cmath>

#include "common/errors.hpp"
#include "reference/eigen_types.hpp"

namespace wdlab::ref {

/// y = tanh(x); a NaN input gives NaN.
template <class T>
void tanh_fprop(const Mat<T>& x, Mat<T>& y) {
  y = x.unaryExpr([](T v) { return std::tanh(v); });
}

/// dx = dy ⊙ (1 − y²), from the *output* y = tanh(x) (what forward returns).
template <class T>
void tanh_bprop(const Mat<T>& y, const Mat<T>& dy, Mat<T>& dx) {
  WDLAB_CHECK(y.rows() == dy.rows() && y.cols() == dy.cols(), "y and dy shapes differ");
  dx = (dy.array() * (T(1) - y.array().square())).matrix();
}

}  // namespace wdlab::ref

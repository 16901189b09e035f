#pragma once
// Reference residual join (header-only; any layout, both inputs the same shape). In wdlab the
// branches are (C·H·W)×N, column n = example n.
#include "common/errors.hpp"
#include "reference/eigen_types.hpp"

namespace wdlab::ref {

/// y = a + b.
template <class T>
void residual_fprop(const Mat<T>& a, const Mat<T>& b, Mat<T>& y) {
  WDLAB_CHECK(a.rows() == b.rows() && a.cols() == b.cols(), "residual branches differ in shape");
  y = a + b;
}

/// da = dy, db = dy (the sum passes its cotangent to both branches unchanged).
template <class T>
void residual_bprop(const Mat<T>& dy, Mat<T>& da, Mat<T>& db) {
  da = dy;
  db = dy;
}

}  // namespace wdlab::ref

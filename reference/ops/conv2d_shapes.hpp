#pragma once
// Argument checks shared by the GEMM (conv2d.cpp) and direct (conv2d_direct.cpp) conv passes:
// the geometry first (UsageError), then every operand's shape against it (InternalError).
#include <fmt/format.h>

#include "common/errors.hpp"
#include "common/geometry.hpp"
#include "reference/eigen_types.hpp"

namespace wdlab::ref::detail {

template <class M>
void check_shape(const char* op, const char* what, const M& m, long rows, long cols) {
  WDLAB_CHECK(
      m.rows() == rows && m.cols() == cols,
      fmt::format("{}: {} is {}x{}, expected {}x{}", op, what, m.rows(), m.cols(), rows, cols));
}

/// x: C·H·W × N.
template <class T>
void check_input(const char* op, const Conv2dGeometry& g, const Mat<T>& x) {
  check_shape(op, "x (C·H·W × N)", x, long(g.C) * g.H * g.W, g.N);
}

/// dy / ds: K·P·Q × N.
template <class T>
void check_output(const char* op, const char* what, const Conv2dGeometry& g, const Mat<T>& y) {
  check_shape(op, what, y, long(g.K) * g.P() * g.Q(), g.N);
}

/// w: K × C·R·S.
template <class T>
void check_filter(const char* op, const Conv2dGeometry& g, const Mat<T>& w) {
  check_shape(op, "w (K × C·R·S)", w, g.K, long(g.C) * g.R * g.S);
}

/// b: K (when given).
template <class T>
void check_bias(const char* op, const Conv2dGeometry& g, const Vec<T>* b) {
  if (b) check_shape(op, "b (K)", *b, g.K, 1);
}

}  // namespace wdlab::ref::detail

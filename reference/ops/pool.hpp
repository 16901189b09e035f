#pragma once
// Reference pooling (Eigen, templated on the scalar; double is the oracle).
// Layout: x is (C·H·W)×N, CHW order within a column, column n = example n (= NCHW memory).
//   max-pool: y is (C·P·Q)×N, windows of window×window at stride `stride`, no padding.
//   global average pool: y is C×N (C×1×1 per example).
#include <cstdint>
#include <string>

#include "common/geometry.hpp"
#include "reference/eigen_types.hpp"

namespace wdlab::ref {

/// Max-pool forward context: for every output (row c·P·Q + p·Q + q, column n) the input row
/// c·H·W + h·W + w of the element that won (the only one that receives gradient).
struct MaxPoolContext {
  Pool2dGeometry geom;
  // (C·P·Q)×N rows of x within each column: 32 bits (a column of x has < 2³¹ entries, checked),
  // half the traffic of 64-bit indices in the forward and backward walks.
  Eigen::Matrix<std::int32_t, Eigen::Dynamic, Eigen::Dynamic> argmax;
};

/// y[c,p,q] = max_{r,s < window} x[c, p·stride + r, q·stride + s].
/// Ties: the first maximum in row-major window order (r, then s) wins; NaN counts as larger
/// than any number (the first NaN in the window wins, so NaN propagates as in PyTorch).
template <class T>
MaxPoolContext maxpool2d_fprop(const Pool2dGeometry& geom, const Mat<T>& x, Mat<T>& y);

/// The same into `ctx`, reusing its buffers (no allocation when the shapes are those of the last
/// call and y does not alias x).
template <class T>
void maxpool2d_fprop(const Pool2dGeometry& geom, const Mat<T>& x, Mat<T>& y, MaxPoolContext& ctx);

/// dx[argmax(c,p,q)] += dy[c,p,q]; zero elsewhere (overlapping windows accumulate).
template <class T>
void maxpool2d_bprop(const Pool2dGeometry& geom, const MaxPoolContext& ctx, const Mat<T>& dy,
                     Mat<T>& dx);

/// Global average pooling C×H×W → C×1×1.
struct GlobalPoolGeometry {
  int N = 1, C = 1, H = 1, W = 1;
  std::string describe() const;
  /// Throws UsageError naming the bad field (non-positive sizes).
  void validate() const;
};

/// y[c] = (1/HW) Σ_{h,w} x[c,h,w].
template <class T>
void global_avgpool_fprop(const GlobalPoolGeometry& geom, const Mat<T>& x, Mat<T>& y);

/// dx[c,h,w] = dy[c]/(HW).
template <class T>
void global_avgpool_bprop(const GlobalPoolGeometry& geom, const Mat<T>& dy, Mat<T>& dx);

}  // namespace wdlab::ref

// Reference pooling; the formulas are in reference/ops/pool.hpp.
#include "reference/ops/pool.hpp"

#include <fmt/format.h>

#include <cmath>

#include "common/cpu_runtime.hpp"
#include "common/errors.hpp"

namespace wdlab::ref {

namespace {

/// One output row of a 2×2, stride-2 max pooling: the window's entries (row0 + 2q, +1, +W, +W+1)
/// compared in the general path's order with its rule, each output kept in registers.
template <class T>
void pool_row_2x2(const T* xn, std::int32_t row0, int W, int Q, T* best, std::int32_t* best_i) {
  const T* r0 = xn + row0;
  const T* r1 = r0 + W;
  for (int q = 0; q < Q; ++q) {
    T b = r0[2 * q];
    std::int32_t bi = row0 + 2 * q;
    auto step = [&](T v, std::int32_t i) {
      // Strict '>' keeps the first maximum; a NaN beats any number, not an earlier NaN.
      const bool take = (v > b) | ((v != v) & (b == b));
      b = take ? v : b;
      bi = take ? i : bi;
    };
    step(r0[2 * q + 1], row0 + 2 * q + 1);
    step(r1[2 * q], row0 + W + 2 * q);
    step(r1[2 * q + 1], row0 + W + 2 * q + 1);
    best[q] = b;
    best_i[q] = bi;
  }
}

}  // namespace

template <class T>
MaxPoolContext maxpool2d_fprop(const Pool2dGeometry& geom, const Mat<T>& x, Mat<T>& y) {
  MaxPoolContext ctx;
  maxpool2d_fprop(geom, x, y, ctx);
  return ctx;
}

template <class T>
void maxpool2d_fprop(const Pool2dGeometry& geom, const Mat<T>& x, Mat<T>& y, MaxPoolContext& ctx) {
  geom.validate();
  const int C = geom.C, H = geom.H, W = geom.W, P = geom.P(), Q = geom.Q();
  WDLAB_CHECK(x.rows() == Eigen::Index(C) * H * W && x.cols() == geom.N,
              fmt::format("x is {}x{} for {}", x.rows(), x.cols(), geom.describe()));
  WDLAB_CHECK(x.rows() < (Eigen::Index(1) << 31), fmt::format("{}: a column of x has 2³¹ entries or more, "
                                                               "beyond the 32-bit argmax", geom.describe()));
  ctx.geom = geom;
  ctx.argmax.resize(Eigen::Index(C) * P * Q, geom.N);
  // Into y directly unless y aliases x (then a fresh matrix, moved into y at the end).
  const bool alias = y.data() == x.data();
  Mat<T> fresh;
  Mat<T>& out = alias ? fresh : y;
  out.resize(Eigen::Index(C) * P * Q, geom.N);
  const int win = geom.window, st = geom.stride;
  parallel_for(geom.N, [&](int n, int) {  // examples are independent
    const T* xn = x.col(n).data();
    T* on = out.col(n).data();
    std::int32_t* an = ctx.argmax.col(n).data();
    if (win == 2 && st == 2) {  // every pooling of the model zoo: each output in registers
      for (int c = 0; c < C; ++c)
        for (int p = 0; p < P; ++p)
          pool_row_2x2(xn, std::int32_t(c * H + 2 * p) * W, W, Q, on + (Eigen::Index(c) * P + p) * Q,
                       an + (Eigen::Index(c) * P + p) * Q);
      return;
    }
    for (int c = 0; c < C; ++c)
      for (int p = 0; p < P; ++p) {
        const std::int32_t row0 = (std::int32_t(c) * H + std::int32_t(p) * st) * W;
        const Eigen::Index o0 = (Eigen::Index(c) * P + p) * Q;
        // The window's first entry starts the search (it is the first maximum unless beaten);
        // then each other window entry (r, s) in order, for all q at once: the same comparisons
        // per output as a window-by-window scan, with the row's outputs streamed instead of one
        // window at a time. (GCC does not vectorize the q loop: -fopt-info-vec says "control flow
        // in loop", also with bitwise tests and a constant stride, tried.)
        T* best = on + o0;
        std::int32_t* best_i = an + o0;
        for (int q = 0; q < Q; ++q) {
          best_i[q] = row0 + std::int32_t(q) * st;
          best[q] = xn[best_i[q]];
        }
        for (int r = 0; r < win; ++r)
          for (int s = 0; s < win; ++s) {
            if (r == 0 && s == 0) continue;
            const std::int32_t at = row0 + std::int32_t(r) * W + s;
            for (int q = 0; q < Q; ++q) {
              const std::int32_t i = at + std::int32_t(q) * st;
              const T v = xn[i], b = best[q];
              // Strict '>' keeps the first maximum; a NaN beats any number, not an earlier NaN.
              const bool take = v > b || (v != v && b == b);
              best_i[q] = take ? i : best_i[q];
              best[q] = take ? v : b;
            }
          }
      }
  });
  if (alias) y = std::move(fresh);
}

template <class T>
void maxpool2d_bprop(const Pool2dGeometry& geom, const MaxPoolContext& ctx, const Mat<T>& dy,
                     Mat<T>& dx) {
  geom.validate();
  WDLAB_CHECK(geom.N == ctx.geom.N && geom.C == ctx.geom.C && geom.H == ctx.geom.H &&
                  geom.W == ctx.geom.W && geom.window == ctx.geom.window &&
                  geom.stride == ctx.geom.stride,
              "geometry differs from the forward pass");
  WDLAB_CHECK(dy.rows() == ctx.argmax.rows() && dy.cols() == ctx.argmax.cols(),
              fmt::format("dy is {}x{} for {}", dy.rows(), dy.cols(), geom.describe()));
  dx.setZero(Eigen::Index(geom.C) * geom.H * geom.W, geom.N);
  parallel_for(int(dy.cols()), [&](int n, int) {  // example n writes column n of dx only
    for (Eigen::Index o = 0; o < dy.rows(); ++o) dx(ctx.argmax(o, n), n) += dy(o, n);
  });
}

std::string GlobalPoolGeometry::describe() const {
  return fmt::format("global_avgpool N={} C={} H={} W={}", N, C, H, W);
}

void GlobalPoolGeometry::validate() const {
  auto positive = [](const char* field, int v) {
    if (v < 1) throw UsageError(field, fmt::format("must be >= 1, got {}", v));
  };
  positive("gap.N", N);
  positive("gap.C", C);
  positive("gap.H", H);
  positive("gap.W", W);
}

template <class T>
void global_avgpool_fprop(const GlobalPoolGeometry& geom, const Mat<T>& x, Mat<T>& y) {
  geom.validate();
  const int HW = geom.H * geom.W;
  WDLAB_CHECK(x.rows() == Eigen::Index(geom.C) * HW && x.cols() == geom.N,
              fmt::format("x is {}x{} for {}", x.rows(), x.cols(), geom.describe()));
  // Into y directly unless y aliases x (then a fresh matrix, moved into y at the end).
  const bool alias = y.data() == x.data();
  Mat<T> fresh;
  Mat<T>& out = alias ? fresh : y;
  out.resize(geom.C, geom.N);
  for (int c = 0; c < geom.C; ++c)
    out.row(c) = x.middleRows(Eigen::Index(c) * HW, HW).colwise().sum() / T(HW);
  if (alias) y = std::move(fresh);
}

template <class T>
void global_avgpool_bprop(const GlobalPoolGeometry& geom, const Mat<T>& dy, Mat<T>& dx) {
  geom.validate();
  const int HW = geom.H * geom.W;
  WDLAB_CHECK(dy.rows() == geom.C && dy.cols() == geom.N,
              fmt::format("dy is {}x{} for {}", dy.rows(), dy.cols(), geom.describe()));
  const bool alias = dx.data() == dy.data();  // then a fresh matrix, as in the forward pass
  Mat<T> fresh;
  Mat<T>& out = alias ? fresh : dx;
  out.resize(Eigen::Index(geom.C) * HW, geom.N);
  for (int c = 0; c < geom.C; ++c)
    out.middleRows(Eigen::Index(c) * HW, HW) = (dy.row(c) / T(HW)).replicate(HW, 1);
  if (alias) dx = std::move(fresh);
}

#define WDLAB_INSTANTIATE(T)                                                                    \
  template MaxPoolContext maxpool2d_fprop<T>(const Pool2dGeometry&, const Mat<T>&, Mat<T>&);    \
  template void maxpool2d_fprop<T>(const Pool2dGeometry&, const Mat<T>&, Mat<T>&, MaxPoolContext&); \
  template void maxpool2d_bprop<T>(const Pool2dGeometry&, const MaxPoolContext&, const Mat<T>&, \
                                   Mat<T>&);                                                    \
  template void global_avgpool_fprop<T>(const GlobalPoolGeometry&, const Mat<T>&, Mat<T>&);     \
  template void global_avgpool_bprop<T>(const GlobalPoolGeometry&, const Mat<T>&, Mat<T>&);
WDLAB_INSTANTIATE(double)
WDLAB_INSTANTIATE(float)
#undef WDLAB_INSTANTIATE

}  // namespace wdlab::ref

// Direct-loop conv passes (the oracle); formulas in reference/ops/conv2d_direct.hpp.
#include "reference/ops/conv2d_direct.hpp"

#include "reference/ops/conv2d_shapes.hpp"

namespace wdlab::ref {

namespace {
// Flat indices of the layouts in conv2d_direct.hpp.
struct Index {
  const Conv2dGeometry& g;
  long x(int c, int h, int v) const { return (long(c) * g.H + h) * g.W + v; }
  long y(int k, int p, int q) const { return (long(k) * g.P() + p) * g.Q() + q; }
  long w(int c, int r, int s) const { return (long(c) * g.R + r) * g.S + s; }
  bool inside(int h, int v) const { return h >= 0 && h < g.H && v >= 0 && v < g.W; }
};
}  // namespace

template <class T>
void conv2d_fprop_direct(const Conv2dGeometry& g, const Mat<T>& x, const Mat<T>& w,
                         const NoDeduce<Vec<T>>* b, Mat<T>& y) {
  g.validate();
  detail::check_input("conv2d_fprop_direct", g, x);
  detail::check_filter("conv2d_fprop_direct", g, w);
  detail::check_bias("conv2d_fprop_direct", g, b);
  const Index ix{g};
  y.setZero(long(g.K) * g.P() * g.Q(), g.N);
  for (int n = 0; n < g.N; ++n)
    for (int k = 0; k < g.K; ++k)
      for (int p = 0; p < g.P(); ++p)
        for (int q = 0; q < g.Q(); ++q) {
          T acc = b ? (*b)(k) : T(0);
          for (int c = 0; c < g.C; ++c)
            for (int r = 0; r < g.R; ++r)
              for (int s = 0; s < g.S; ++s) {
                const int h = p * g.stride - g.pad + r, v = q * g.stride - g.pad + s;
                if (ix.inside(h, v)) acc += w(k, ix.w(c, r, s)) * x(ix.x(c, h, v), n);
              }
          y(ix.y(k, p, q), n) = acc;
        }
}

template <class T>
void conv2d_bprop_data_direct(const Conv2dGeometry& g, const Mat<T>& dy, const Mat<T>& w,
                              Mat<T>& dx) {
  g.validate();
  detail::check_output("conv2d_bprop_data_direct", "dy (K·P·Q × N)", g, dy);
  detail::check_filter("conv2d_bprop_data_direct", g, w);
  const Index ix{g};
  dx.setZero(long(g.C) * g.H * g.W, g.N);
  for (int n = 0; n < g.N; ++n)
    for (int k = 0; k < g.K; ++k)
      for (int p = 0; p < g.P(); ++p)
        for (int q = 0; q < g.Q(); ++q)
          for (int c = 0; c < g.C; ++c)
            for (int r = 0; r < g.R; ++r)
              for (int s = 0; s < g.S; ++s) {
                const int h = p * g.stride - g.pad + r, v = q * g.stride - g.pad + s;
                if (ix.inside(h, v))
                  dx(ix.x(c, h, v), n) += w(k, ix.w(c, r, s)) * dy(ix.y(k, p, q), n);
              }
}

template <class T>
void conv2d_bprop_filter_direct(const Conv2dGeometry& g, const Mat<T>& x, const Mat<T>& dy,
                                Mat<T>& dw, NoDeduce<Vec<T>>* db) {
  g.validate();
  detail::check_input("conv2d_bprop_filter_direct", g, x);
  detail::check_output("conv2d_bprop_filter_direct", "dy (K·P·Q × N)", g, dy);
  const Index ix{g};
  dw.setZero(g.K, long(g.C) * g.R * g.S);
  for (int k = 0; k < g.K; ++k)
    for (int c = 0; c < g.C; ++c)
      for (int r = 0; r < g.R; ++r)
        for (int s = 0; s < g.S; ++s) {
          T acc = 0;
          for (int n = 0; n < g.N; ++n)
            for (int p = 0; p < g.P(); ++p)
              for (int q = 0; q < g.Q(); ++q) {
                const int h = p * g.stride - g.pad + r, v = q * g.stride - g.pad + s;
                if (ix.inside(h, v)) acc += dy(ix.y(k, p, q), n) * x(ix.x(c, h, v), n);
              }
          dw(k, ix.w(c, r, s)) = acc;
        }
  if (db) {
    db->setZero(g.K);
    for (int k = 0; k < g.K; ++k)
      for (int n = 0; n < g.N; ++n)
        for (int p = 0; p < g.P(); ++p)
          for (int q = 0; q < g.Q(); ++q) (*db)(k) += dy(ix.y(k, p, q), n);
  }
}

#define WDLAB_INSTANTIATE(T)                                                                       \
  template void conv2d_fprop_direct<T>(const Conv2dGeometry&, const Mat<T>&, const Mat<T>&,        \
                                       const Vec<T>*, Mat<T>&);                                    \
  template void conv2d_bprop_data_direct<T>(const Conv2dGeometry&, const Mat<T>&, const Mat<T>&,   \
                                            Mat<T>&);                                              \
  template void conv2d_bprop_filter_direct<T>(const Conv2dGeometry&, const Mat<T>&, const Mat<T>&, \
                                              Mat<T>&, Vec<T>*);
WDLAB_INSTANTIATE(double)
WDLAB_INSTANTIATE(float)
#undef WDLAB_INSTANTIATE

}  // namespace wdlab::ref

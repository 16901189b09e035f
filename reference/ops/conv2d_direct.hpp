#pragma once
// Direct-loop 2-D convolution: the same three passes as reference/ops/conv2d.hpp, written as the
// plain nested sums of their formulas with no im2col, no GEMM and no reordering. It is slow and
// exists only as the oracle the GEMM path is tested against. Same layouts as conv2d.hpp:
//   x: C·H·W × N,  w: K × C·R·S (column (c·R + r)·S + s),  b: K,  y: K·P·Q × N.
#include "common/geometry.hpp"
#include "reference/eigen_types.hpp"
#include "reference/ops/conv2d.hpp"  // NoDeduce

namespace wdlab::ref {

/// y[n,k,p,q] = Σ_{c,r,s} w[k,c,r,s]·x[n,c,p·σ−pad+r,q·σ−pad+s] + b[k]   (x outside = 0)
template <class T>
void conv2d_fprop_direct(const Conv2dGeometry& g, const Mat<T>& x, const Mat<T>& w,
                         const NoDeduce<Vec<T>>* b, Mat<T>& y);

/// dx[n,c,p·σ−pad+r,q·σ−pad+s] += w[k,c,r,s]·dy[n,k,p,q]   over all n,k,p,q,c,r,s in range
template <class T>
void conv2d_bprop_data_direct(const Conv2dGeometry& g, const Mat<T>& dy, const Mat<T>& w,
                              Mat<T>& dx);

/// dw[k,c,r,s] = Σ_{n,p,q} dy[n,k,p,q]·x[n,c,p·σ−pad+r,q·σ−pad+s],  db[k] = Σ_{n,p,q} dy[n,k,p,q]
template <class T>
void conv2d_bprop_filter_direct(const Conv2dGeometry& g, const Mat<T>& x, const Mat<T>& dy,
                                Mat<T>& dw, NoDeduce<Vec<T>>* db);

}  // namespace wdlab::ref

#pragma once
// Reference 2-D convolution (cross-correlation, PyTorch's conv2d) and its KFC factors
// (MATH.md §9.5), Eigen, templated on the scalar; double is the oracle for the CUDA backend.
// Layouts (dimension legend in common/geometry.hpp):
//   x  : C·H·W × N, column n is example n's CHW image (= NCHW memory)
//   w  : K × C·R·S, column (c·R + r)·S + s (PyTorch's [K,C,R,S] per row);  b: K (optional)
//   y  : K·P·Q × N, column n is example n's KPQ output (= NKPQ memory)
// Passes run as batched im2col + one GEMM per chunk of examples (patch buffer ≤ 4 MB, at least
// 8 chunks per batch where N allows), the chunks spread over the --threads threads, each chunk's
// GEMM on one BLAS thread; the cut depends on the geometry only, so the results do not depend on
// the thread count;
// reference/ops/conv2d_direct.hpp holds the plain loop version the tests check these against.
#include <cstddef>
#include <type_traits>

#include "common/geometry.hpp"
#include "reference/eigen_types.hpp"

namespace wdlab::ref {

/// Vec<T> in a non-deduced context: T comes from the matrices, so nullptr can stand for "no bias".
template <class T>
using NoDeduce = std::type_identity_t<T>;

/// Whether KFC patch vectors carry a trailing 1 (ā = [a; 1]) for the bias.
enum class Homogeneous { off, on };

/// y[n,k,p,q] = Σ_{c,r,s} w[k,c,r,s]·x[n,c,p·σ−pad+r,q·σ−pad+s] + b[k]   (x outside = 0)
/// b may be nullptr (no bias). y is resized to K·P·Q × N.
template <class T>
void conv2d_fprop(const Conv2dGeometry& g, const Mat<T>& x, const Mat<T>& w,
                  const NoDeduce<Vec<T>>* b, Mat<T>& y);

/// dx[n,c,h,v] = Σ_{k,r,s; p·σ−pad+r=h, q·σ−pad+s=v} w[k,c,r,s]·dy[n,k,p,q]   (dx = ∂⟨dy,y⟩/∂x)
/// dx is resized to C·H·W × N and overwritten.
template <class T>
void conv2d_bprop_data(const Conv2dGeometry& g, const Mat<T>& dy, const Mat<T>& w, Mat<T>& dx);

/// dw[k,c,r,s] = Σ_{n,p,q} dy[n,k,p,q]·x[n,c,p·σ−pad+r,q·σ−pad+s],  db[k] = Σ_{n,p,q} dy[n,k,p,q]
/// dw is resized to K × C·R·S and overwritten; db (if not nullptr) resized to K and overwritten.
template <class T>
void conv2d_bprop_filter(const Conv2dGeometry& g, const Mat<T>& x, const Mat<T>& dy, Mat<T>& dw,
                         NoDeduce<Vec<T>>* db);

/// Both backward passes in one walk over the chunks: dw (and db) as conv2d_bprop_filter and, when
/// dx is not nullptr, dx as conv2d_bprop_data, the same bits as the two calls. Each chunk's
/// stacked cotangent DYᵗ is built once and used by both products while it is in cache.
template <class T>
void conv2d_bprop(const Conv2dGeometry& g, const Mat<T>& x, const Mat<T>& dy, const Mat<T>& w, Mat<T>& dw,
                  NoDeduce<Vec<T>>* db, Mat<T>* dx);

/// A[(c·R + r)·S + s, n·P·Q + p·Q + q] = x[n,c,p·σ−pad+r,q·σ−pad+s]  (im2col of the whole batch)
/// C·R·S rows, plus a last row of ones when h == Homogeneous::on; P·Q·N columns.
/// With it, y[n,k,p,q] = (w·A)[k, n·P·Q + p·Q + q] + b[k].
template <class T>
Mat<T> conv2d_patches(const Conv2dGeometry& g, const Mat<T>& x, Homogeneous h);

/// Ω = (1/(N·T)) Σ_{n,t} ā_{n,t} ā_{n,t}ᵀ, T = P·Q, ā_{n,t} = column n·T + t of conv2d_patches
/// (KFC input factor, MATH.md §9.5). (C·R·S [+1])², exactly symmetric.
template <class T>
Mat<T> conv2d_kfc_input_factor(const Conv2dGeometry& g, const Mat<T>& x, Homogeneous h);

/// Γ = (1/(N·T)) Σ_{n,t} ds_{n,t} ds_{n,t}ᵀ, ds_{n,t}[k] = ds[k·T + t, n] the cotangent at output
/// location t of example n (KFC output factor, MATH.md §9.5). K × K, exactly symmetric.
template <class T>
Mat<T> conv2d_kfc_output_factor(const Conv2dGeometry& g, const Mat<T>& ds);

/// How many examples one im2col chunk holds for this geometry and scalar size: the largest count
/// whose patch buffer (count·P·Q × C·R·S scalars) fits in 4 MB, at least 1, at most N.
int conv2d_chunk_examples(const Conv2dGeometry& g, std::size_t scalar_bytes);

}  // namespace wdlab::ref

#pragma once
// KFC patch extraction for the conv input factor Ω (MATH.md §9.5; reference/ops/conv2d.hpp
// conv2d_patches): the matrix A of d = C·R·S (+1) rows and N·P·Q columns, column-major (ld = d),
//   A[(c·R + r)·S + s, n·P·Q + p·Q + q] = x[n, c, p·σ − pad + r, q·σ − pad + s]  (0 outside),
//   A[C·R·S, ·] = 1 when homogeneous (the bias coordinate),
// so Ω = A Aᵀ/(N·P·Q) is one syrk.
#include "cuda/kernels/hd.hpp"

namespace wdlab::cuda::kernels {

struct ConvShape {
  Index C, H, W, R, S, P, Q, pad, stride;
};

struct ConvPatches {
  const float* x;
  float* a;
  ConvShape g;
  Index rows;  // d: C·R·S, or C·R·S + 1 with the homogeneous row
  WDLAB_HD void operator()(Index i) const {
    const Index row = i % rows, col = i / rows;
    const Index crs = g.C * g.R * g.S;
    if (row >= crs) {
      a[i] = 1.0f;
      return;
    }
    const Index PQ = g.P * g.Q;
    const Index n = col / PQ, t = col % PQ, p = t / g.Q, q = t % g.Q;
    const Index c = row / (g.R * g.S), r = (row / g.S) % g.R, s = row % g.S;
    const Index h = p * g.stride - g.pad + r, w = q * g.stride - g.pad + s;
    a[i] = (h >= 0 && h < g.H && w >= 0 && w < g.W) ? x[((n * g.C + c) * g.H + h) * g.W + w]
                                                     : 0.0f;
  }
};

/// The KFC output factor's columns (MATH.md §9.5; conv2d_kfc_output_factor): the cotangent ds
/// at the conv output (NKPQ, T = P·Q locations) rearranged as the column-major K × N·T matrix
///   D[k, n·T + t] = ds[n, k, t],
/// so Γ = D Dᵀ/(N·T) is one syrk (dense layers: T = 1, D is dy itself). Index space K·N·T.
struct CotangentColumns {
  const float* ds;
  float* d;
  Index K, T;
  WDLAB_HD void operator()(Index i) const {
    const Index k = i % K, col = i / K, n = col / T, t = col % T;
    d[i] = ds[(n * K + k) * T + t];
  }
};

}  // namespace wdlab::cuda::kernels

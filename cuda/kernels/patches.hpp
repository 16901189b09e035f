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

}  // namespace wdlab::cuda::kernels

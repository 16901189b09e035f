#pragma once
// C = A·B for the engine's dense products (dense layers, K-FAC's factors and preconditioning) on
// the engine's own threads. The BLAS itself always runs on one thread (set_cpu_threads): one pool
// for the products and the elementwise loops. OpenBLAS's own workers poll (sched_yield) for up to
// 2²⁸ cycles after each threaded call, and on a 2-core machine that polling took the core the
// next pass's second thread needed: the BN convnet's K-FAC-F step, whose classifier products ran
// threaded, had a median of 148 ms against 135 ms with the BLAS on one thread (alternated).
//
// The product is cut along C's longer side into pieces that depend on the shapes only (never on
// the thread count; piece_cut), each piece one single-threaded BLAS call on one thread, and small
// products run whole on the caller.
#include <algorithm>
#include <cstdint>

#include "common/cpu_runtime.hpp"
#include "reference/eigen_types.hpp"

namespace wdlab::ref {

/// How ref::gemm cuts a side of `len` entries, and any other pass that cuts by shape alike (the
/// Cholesky inverse's right-hand sides): `count` pieces of `size` (a multiple of 16, the last one
/// shorter), at least 128 long where len allows, at most 8 (an even count where len ≥ 1 024, so
/// two threads get equal shares). Each piece packs the uncut operand again, hence few and large.
struct PieceCut {
  Eigen::Index size, count;
};

inline PieceCut piece_cut(Eigen::Index len) {
  constexpr Eigen::Index kMinPiece = 128, kMaxPieces = 8;
  const Eigen::Index want = std::clamp<Eigen::Index>((len + kMinPiece - 1) / kMinPiece, 1, kMaxPieces);
  const Eigen::Index size = ((len + want - 1) / want + 15) / 16 * 16;
  return PieceCut{size, (len + size - 1) / size};
}

/// Multiply-adds below which ref::gemm runs a product whole on the caller (waking a thread costs
/// more than the work).
inline constexpr double kGemmSerialMacs = 4e6;

/// C = A·B (C resized; C must not alias A or B). A and B are any Eigen expressions the BLAS takes
/// directly (matrices, blocks, transposes).
template <class T, class L, class R>
void gemm(Mat<T>& C, const L& A, const R& B) {
  const Eigen::Index m = A.rows(), n = B.cols(), k = A.cols();
  C.resize(m, n);
  if (double(m) * double(n) * double(k) < kGemmSerialMacs) {
    C.noalias() = A * B;
    return;
  }
  // The lambdas capture one reference, so std::function keeps them without allocating (a
  // training step allocates nothing once its buffers exist: test_step_workspace).
  struct Job {
    Mat<T>& C;
    const L& A;
    const R& B;
    Eigen::Index m, n;
    PieceCut cut;
  } job{C, A, B, m, n, piece_cut(m >= n ? m : n)};
  if (m >= n) {
    parallel_for(int(job.cut.count), [&job](int i, int) {
      const Eigen::Index r0 = i * job.cut.size, rows = std::min(job.cut.size, job.m - r0);
      job.C.middleRows(r0, rows).noalias() = job.A.middleRows(r0, rows) * job.B;
    });
  } else {
    parallel_for(int(job.cut.count), [&job](int i, int) {
      const Eigen::Index c0 = i * job.cut.size, cols = std::min(job.cut.size, job.n - c0);
      job.C.middleCols(c0, cols).noalias() = job.A * job.B.middleCols(c0, cols);
    });
  }
}

}  // namespace wdlab::ref

#pragma once
// C = op(A)·op(B), written without reading C first.
//
// Eigen's `C.noalias() = A * B` on its BLAS path zeroes C and then calls xGEMM with β = 1, so every
// large product pays a memset of C and a read of C back (perf, BN convnet SGD step: memset 3.7 % of
// the samples; C is as large as the im2col patches in the conv data pass). gemm() calls xGEMM with
// β = 0, which neither clears nor reads C. The bits are the same: OpenBLAS adds each K-block's sum
// to C, and C starts at 0 both ways (tested against the Eigen product, bit for bit).
//
// A, B and C are column-major blocks with unit inner stride (a Mat, a Map, topRows/leftCols/
// middleCols of one); C must already have its shape rows(op(A)) × cols(op(B)).
#include <Eigen/Dense>

#include "common/errors.hpp"
#include "reference/eigen_types.hpp"

namespace wdlab::ref {

/// op(X) = X or Xᵀ.
enum class Op { none, transpose };

namespace detail {

#if defined(EIGEN_USE_BLAS)
inline void xgemm(const char* ta, const char* tb, const int* m, const int* n, const int* k, const float* alpha,
                  const float* a, const int* lda, const float* b, const int* ldb, const float* beta, float* c,
                  const int* ldc) {
  sgemm_(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
inline void xgemm(const char* ta, const char* tb, const int* m, const int* n, const int* k, const double* alpha,
                  const double* a, const int* lda, const double* b, const int* ldb, const double* beta, double* c,
                  const int* ldc) {
  dgemm_(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
#endif

}  // namespace detail

template <class T>
void gemm(Op op_a, const Eigen::Ref<const Mat<T>>& A, Op op_b, const Eigen::Ref<const Mat<T>>& B,
          Eigen::Ref<Mat<T>> C) {
  const Eigen::Index m = op_a == Op::none ? A.rows() : A.cols();
  const Eigen::Index k = op_a == Op::none ? A.cols() : A.rows();
  const Eigen::Index kb = op_b == Op::none ? B.rows() : B.cols();
  const Eigen::Index n = op_b == Op::none ? B.cols() : B.rows();
  WDLAB_CHECK(k == kb && C.rows() == m && C.cols() == n, "gemm: shapes do not agree");
  if (m == 0 || n == 0) return;
  if (k == 0) {
    C.setZero();
    return;
  }
#if defined(EIGEN_USE_BLAS)
  const int mi = int(m), ni = int(n), ki = int(k);
  const int lda = int(std::max<Eigen::Index>(1, A.outerStride()));
  const int ldb = int(std::max<Eigen::Index>(1, B.outerStride()));
  const int ldc = int(std::max<Eigen::Index>(1, C.outerStride()));
  const T one = 1, zero = 0;
  const char ta = op_a == Op::none ? 'N' : 'T', tb = op_b == Op::none ? 'N' : 'T';
  detail::xgemm(&ta, &tb, &mi, &ni, &ki, &one, A.data(), &lda, B.data(), &ldb, &zero, C.data(), &ldc);
#else
  if (op_a == Op::none && op_b == Op::none) C.noalias() = A * B;
  else if (op_a == Op::none) C.noalias() = A * B.transpose();
  else if (op_b == Op::none) C.noalias() = A.transpose() * B;
  else C.noalias() = A.transpose() * B.transpose();
#endif
}

}  // namespace wdlab::ref

// gemm (reference/ops/gemm.hpp) against Eigen's product, bit for bit: every op(A)·op(B)
// combination, blocks with an outer stride larger than their rows, empty and k = 0 shapes, and
// a destination that held garbage (β = 0 must neither read nor keep it).
#include <doctest/doctest.h>

#include <cstring>
#include <limits>

#include "reference/ops/gemm.hpp"

using namespace wdlab::ref;

namespace {

template <class T>
Mat<T> filled(Eigen::Index r, Eigen::Index c, int seed) {
  Mat<T> m(r, c);
  for (Eigen::Index i = 0; i < m.size(); ++i) m.data()[i] = T(((i * 7919 + seed * 104729) % 2001) - 1000) / T(977);
  return m;
}

template <class T>
bool same_bits(const Mat<T>& a, const Mat<T>& b) {
  return a.rows() == b.rows() && a.cols() == b.cols() &&
         std::memcmp(a.data(), b.data(), sizeof(T) * std::size_t(a.size())) == 0;
}

template <class T>
void check_all_ops() {
  const Eigen::Index m = 37, k = 129, n = 23;  // odd sizes: kernel edges in every dimension
  for (const Op oa : {Op::none, Op::transpose})
    for (const Op ob : {Op::none, Op::transpose}) {
      CAPTURE(int(oa));
      CAPTURE(int(ob));
      // Operands as blocks of larger matrices: outer stride ≠ rows.
      const Mat<T> Abig = filled<T>(oa == Op::none ? m + 5 : k + 5, oa == Op::none ? k : m, 1);
      const Mat<T> Bbig = filled<T>(ob == Op::none ? k + 3 : n + 3, ob == Op::none ? n : k, 2);
      const auto A = Abig.topRows(oa == Op::none ? m : k);
      const auto B = Bbig.topRows(ob == Op::none ? k : n);
      Mat<T> expected(m, n);
      if (oa == Op::none && ob == Op::none) expected.noalias() = A * B;
      else if (oa == Op::none) expected.noalias() = A * B.transpose();
      else if (ob == Op::none) expected.noalias() = A.transpose() * B;
      else expected.noalias() = A.transpose() * B.transpose();
      Mat<T> Cbig = Mat<T>::Constant(m + 4, n, std::numeric_limits<T>::quiet_NaN());  // garbage
      gemm<T>(oa, A, ob, B, Cbig.topRows(m));
      const Mat<T> got = Cbig.topRows(m);
      CHECK(same_bits(got, expected));
      CHECK(Cbig.bottomRows(4).hasNaN());  // rows outside the block are untouched
      CHECK(Cbig.bottomRows(4).array().isNaN().all());
      // Control: a wrong operation is seen by the same comparison.
      Mat<T> wrong = got;
      wrong(3, 5) = std::nextafter(wrong(3, 5), T(1e9));
      CHECK_FALSE(same_bits(wrong, expected));
    }
  // k = 0: C = 0 whatever it held; an empty C is left alone; mismatched shapes are refused.
  Mat<T> C = Mat<T>::Constant(3, 2, T(5));
  gemm<T>(Op::none, Mat<T>(3, 0), Op::none, Mat<T>(0, 2), C);
  CHECK(C.isZero(0));
  Mat<T> E(0, 2);
  gemm<T>(Op::none, Mat<T>(0, 4), Op::none, Mat<T>(4, 2), E);
  CHECK_THROWS(gemm<T>(Op::none, Mat<T>(3, 4), Op::none, Mat<T>(5, 2), C));
}

}  // namespace

TEST_CASE("gemm equals Eigen's product bit for bit, without reading the destination (float, double)") {
  check_all_ops<float>();
  check_all_ops<double>();
}

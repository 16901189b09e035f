#pragma once
// Helpers for the kernel-body tests: deterministic inputs from the shared Philox, conversions
// between the reference's Eigen matrices (column-major: NCHW data, K×N logits) and the flat float
// arrays the kernel bodies read, and printed comparisons (tol::Kind::float_kernel).
#include <doctest/doctest.h>

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "common/compare.hpp"
#include "common/philox.hpp"
#include "reference/eigen_types.hpp"
#include "../support/expect_pass.hpp"

namespace wdlab::cuda::testing {

using ref::Mat;
using ref::Vec;

/// rows × cols entries offset + scale·N(0,1), from purpose theory with `stream` as the step.
inline Mat<double> normal_mat(Eigen::Index rows, Eigen::Index cols, std::uint64_t stream,
                              double scale = 1.0, double offset = 0.0) {
  Mat<double> m(rows, cols);
  for (Eigen::Index i = 0; i < m.size(); ++i)
    m.data()[i] = offset + scale * rng::normal(11, rng::Purpose::theory, stream, std::uint64_t(i));
  return m;
}

/// The matrix's entries in storage (column-major) order, as float: what a kernel reads.
template <class Derived>
std::vector<float> flat_f(const Eigen::MatrixBase<Derived>& m) {
  std::vector<float> v(std::size_t(m.size()));
  const auto e = m.eval();
  for (Eigen::Index i = 0; i < e.size(); ++i) v[std::size_t(i)] = float(e.data()[i]);
  return v;
}

template <class Derived>
std::vector<double> flat_d(const Eigen::MatrixBase<Derived>& m) {
  std::vector<double> v(std::size_t(m.size()));
  const auto e = m.eval();
  for (Eigen::Index i = 0; i < e.size(); ++i) v[std::size_t(i)] = double(e.data()[i]);
  return v;
}

template <class U>
std::vector<double> to_d(const std::vector<U>& v) {
  return std::vector<double>(v.begin(), v.end());
}

/// The float inputs rounded back to double: the reference then sees exactly what the kernel saw.
inline Mat<double> rounded(const Mat<double>& m) { return m.cast<float>().cast<double>(); }

inline Comparison compare_kernel(std::string name, const std::vector<double>& x,
                                 const std::vector<double>& ref) {
  return compare(std::move(name), x, ref, tol::Kind::float_kernel);
}

inline Comparison compare_exact(std::string name, const std::vector<double>& x,
                                const std::vector<double>& ref) {
  return compare(std::move(name), x, ref, tol::Kind::exact_integer);
}

}  // namespace wdlab::cuda::testing

#pragma once
#include "../../support/expect_pass.hpp"
// Helpers shared by the layer-op tests: deterministic inputs, central finite differences,
// printed comparisons.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <numeric>
#include <span>
#include <string>
#include <vector>

#include "common/compare.hpp"
#include "common/philox.hpp"
#include "reference/eigen_types.hpp"

namespace wdlab::ref::testing {

template <class Derived>
std::span<const double> span_of(const Eigen::PlainObjectBase<Derived>& m) {
  return {m.data(), std::size_t(m.size())};
}


/// Normal(offset, scale²) entries from the shared RNG (purpose theory; `stream` as the step).
inline Mat<double> normal_mat(Eigen::Index rows, Eigen::Index cols, std::uint64_t stream,
                              double scale = 1.0, double offset = 0.0) {
  Mat<double> m(rows, cols);
  for (Eigen::Index i = 0; i < m.size(); ++i)
    m.data()[i] = offset + scale * rng::normal(7, rng::Purpose::theory, stream, std::uint64_t(i));
  return m;
}

inline Vec<double> normal_vec(Eigen::Index n, std::uint64_t stream, double scale = 1.0,
                              double offset = 0.0) {
  return normal_mat(n, 1, stream, scale, offset);
}

/// Step of the central differences: 1e-5 relative (tol::Kind::finite_difference's premise).
inline double fd_step(double x) { return 1e-5 * std::max(1.0, std::abs(x)); }

/// ∂f/∂x_i by central differences, for every entry of x (any shape).
template <class M>
M fd_gradient(const std::function<double(const M&)>& f, const M& x) {
  M g(x.rows(), x.cols());
  for (Eigen::Index i = 0; i < x.size(); ++i) {
    const double h = fd_step(x.data()[i]);
    M xp = x, xm = x;
    xp.data()[i] += h;
    xm.data()[i] -= h;
    g.data()[i] = (f(xp) - f(xm)) / (2 * h);
  }
  return g;
}

/// ⟨a, b⟩ over all entries: the scalar L = ⟨dy, y(x)⟩ whose gradient is the VJP dx.
inline double dot(const Mat<double>& a, const Mat<double>& b) {
  return (a.array() * b.array()).sum();
}

template <class T>
Mat<T> cast(const Mat<double>& m) {
  return m.cast<T>();
}

inline Mat<double> to_double(const Mat<float>& m) { return m.cast<double>(); }
inline Vec<double> to_double(const Vec<float>& v) { return v.cast<double>(); }

/// Entries ((π(i) − size/2)·spacing) for a pseudo-random permutation π: every two entries differ
/// by at least `spacing`, so max-pool windows have no near-ties.
inline Mat<double> distinct_mat(Eigen::Index rows, Eigen::Index cols, std::uint64_t stream,
                                double spacing) {
  const Eigen::Index n = rows * cols;
  std::vector<Eigen::Index> order(n);
  std::iota(order.begin(), order.end(), Eigen::Index(0));
  std::vector<double> key(n);
  for (Eigen::Index i = 0; i < n; ++i)
    key[i] = rng::uniform(7, rng::Purpose::theory, stream, std::uint64_t(i));
  std::sort(order.begin(), order.end(), [&](auto a, auto b) { return key[a] < key[b]; });
  Mat<double> m(rows, cols);
  for (Eigen::Index r = 0; r < n; ++r) m.data()[order[r]] = (double(r) - double(n) / 2) * spacing;
  return m;
}

}  // namespace wdlab::ref::testing

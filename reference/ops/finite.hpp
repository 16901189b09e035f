#pragma once
// all_finite(x): no entry of x is ±∞ or NaN, the test the training step makes on every gradient
// and parameter. Eigen's allFinite() evaluates x − x == 0 with a branch per element (GCC does not
// vectorize it: measured 11 % of the MLP's float SGD step); this reads the exponent bits instead
// (all ones ⇔ ±∞ or NaN), an integer OR-reduction the compiler vectorizes.
#include <atomic>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "common/cpu_runtime.hpp"

#include "reference/eigen_types.hpp"

namespace wdlab::ref {

template <class T>
bool all_finite(const T* x, Eigen::Index n) {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>);
  using Bits = std::conditional_t<std::is_same_v<T, float>, std::uint32_t, std::uint64_t>;
  constexpr Bits exponent = std::is_same_v<T, float> ? Bits(0x7f800000u) : Bits(0x7ff0000000000000ull);
  Bits bad = 0;
  for (Eigen::Index i = 0; i < n; ++i) {
    Bits b;
    std::memcpy(&b, x + i, sizeof b);
    bad |= Bits((b & exponent) == exponent);
  }
  return bad == 0;
}

template <class T>
bool all_finite(const Mat<T>& x) {
  return all_finite(x.data(), x.size());
}

/// A tensor's entries as the non-finite check reads them.
template <class T>
struct Span {
  const T* data = nullptr;
  Eigen::Index size = 0;
};

/// The first of `xs` (in order) that holds ±∞ or NaN, or −1 when none does. The spans are read
/// in pieces on the engine's threads (parallel_pieces); which index comes back does not depend on
/// the thread count.
template <class T>
int first_nonfinite(const std::vector<Span<T>>& xs) {
  std::vector<std::int64_t> sizes;
  sizes.reserve(xs.size());
  for (const Span<T>& x : xs) sizes.push_back(std::int64_t(x.size));
  std::vector<std::atomic<int>> bad(xs.size());  // value-initialized: 0
  parallel_pieces(sizes, std::int64_t(1) << 16, [&](int t, std::int64_t b, std::int64_t e) {
    if (!all_finite(xs[std::size_t(t)].data + b, Eigen::Index(e - b))) bad[std::size_t(t)].store(1);
  });
  for (std::size_t t = 0; t < xs.size(); ++t)
    if (bad[t].load() != 0) return int(t);
  return -1;
}

/// The same over whole matrices.
template <class T>
int first_nonfinite(const std::vector<Mat<T>>& xs) {
  std::vector<Span<T>> spans;
  spans.reserve(xs.size());
  for (const Mat<T>& x : xs) spans.push_back(Span<T>{x.data(), x.size()});
  return first_nonfinite(spans);
}

}  // namespace wdlab::ref

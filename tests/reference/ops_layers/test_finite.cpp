// all_finite (reference/ops/finite.hpp) against Eigen's allFinite on arrays with one ±∞ or NaN at
// every position, and with only finite extremes (largest, smallest normal, subnormal, −0).
#include <doctest/doctest.h>

#include <limits>
#include <vector>

#include "common/cpu_runtime.hpp"
#include "reference/ops/finite.hpp"

using namespace wdlab::ref;

namespace {

template <class T>
void check_all_positions() {
  using L = std::numeric_limits<T>;
  const std::vector<T> finite_extremes = {L::max(), -L::max(), L::min(), L::denorm_min(), T(-0.0), T(1)};
  const std::vector<T> bad = {L::infinity(), -L::infinity(), L::quiet_NaN(), -L::quiet_NaN(), L::signaling_NaN()};
  for (const int n : {1, 3, 4, 7, 8, 17, 33}) {
    Mat<T> x(n, 1);
    for (int i = 0; i < n; ++i) x(i) = finite_extremes[std::size_t(i) % finite_extremes.size()];
    CHECK(all_finite(x));
    CHECK(x.allFinite());
    for (int at = 0; at < n; ++at)
      for (const T b : bad) {
        Mat<T> y = x;
        y(at) = b;
        CAPTURE(n);
        CAPTURE(at);
        CHECK(!all_finite(y));
        CHECK(all_finite(y) == y.allFinite());  // the same answer as Eigen's
      }
  }
  CHECK(all_finite(Mat<T>(0, 0)));  // nothing to check
}

}  // namespace

TEST_CASE("all_finite finds one ±inf or NaN anywhere and passes every finite extreme (float, double)") {
  check_all_positions<float>();
  check_all_positions<double>();
}

TEST_CASE("first_nonfinite names the first bad tensor, scanned in pieces on one thread and on two") {
  // Tensors of 3, 2^17 + 5 (several pieces) and 7 entries; one NaN or ±inf placed in each tensor
  // at its first, a middle and its last entry.
  const std::vector<long> sizes = {3, (1L << 17) + 5, 7};
  for (const int threads : {1, 2}) {
    CAPTURE(threads);
    wdlab::set_cpu_threads(threads);
    std::vector<Mat<float>> xs;
    for (const long n : sizes) xs.push_back(Mat<float>::Constant(n, 1, 1.5f));
    CHECK(first_nonfinite(xs) == -1);
    for (int t = 0; t < 3; ++t)
      for (const long at : {0L, sizes[std::size_t(t)] / 2, sizes[std::size_t(t)] - 1}) {
        CAPTURE(t);
        CAPTURE(at);
        std::vector<Mat<float>> ys = xs;
        ys[std::size_t(t)](at) = std::numeric_limits<float>::quiet_NaN();
        CHECK(first_nonfinite(ys) == t);
        ys[2](0) = -std::numeric_limits<float>::infinity();  // a later bad tensor does not hide it
        CHECK(first_nonfinite(ys) == t);
      }
    CHECK(first_nonfinite(std::vector<Mat<double>>{}) == -1);
  }
  wdlab::set_cpu_threads(0);
}

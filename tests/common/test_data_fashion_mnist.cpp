// The real Fashion-MNIST from the Debian package dataset-fashion-mnist (the embedded default).
// Expected values were read from the files independently (Python gzip), not taken from wdlab:
// first train labels 9 0 0 3 0 2 (9 = ankle boot), first test labels 9 2 1 1; 6000 per class in
// train and 1000 in test; pixel byte sums 3431114169 (train), 573469082 (test); train image 0
// sums to 76247, its first non-zero pixel is at 96 and its max, 255, first at 417.
#include <doctest/doctest.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "common/data/idx.hpp"

using namespace wdlab::data;

namespace {

// Without the package there is nothing to check: exit with ctest's skip code (77, see
// tests/wdlab_test.cmake) so the run says "skipped", never "passed".
void require_package_or_skip() {
  const auto dir = fashion_mnist_dir();
  std::error_code ec;
  if (!std::filesystem::exists(dir / "train-labels-idx1-ubyte.gz", ec) &&
      !std::filesystem::exists(dir / "train-labels-idx1-ubyte", ec)) {
    std::fprintf(stderr, "SKIP: Fashion-MNIST not found in %s (Debian package "
                         "dataset-fashion-mnist)\n", dir.string().c_str());
    std::exit(77);
  }
}

std::uint64_t byte_sum(const Dataset& d) {
  std::uint64_t s = 0;
  for (float x : d.images) s += std::uint64_t(std::lround(x * 255.0f));
  return s;
}

}  // namespace

TEST_CASE("fashion-mnist: train is 60000×1×28×28, balanced, first label 9 (ankle boot)") {
  require_package_or_skip();
  const Dataset d = load_fashion_mnist(Split::train);
  CHECK(d.name == "fashion-mnist/train");
  CHECK(d.size() == 60000);
  CHECK(d.channels == 1);
  CHECK(d.height == 28);
  CHECK(d.width == 28);
  CHECK(d.num_classes == 10);
  REQUIRE(d.images.size() == 60000u * 784u);
  CHECK(d.labels[0] == 9);
  CHECK(std::vector<std::int32_t>(d.labels.begin(), d.labels.begin() + 6) ==
        std::vector<std::int32_t>{9, 0, 0, 3, 0, 2});
  std::array<int, 10> per_class{};
  for (std::int32_t y : d.labels) {
    REQUIRE(y >= 0);
    REQUIRE(y <= 9);
    ++per_class[std::size_t(y)];
  }
  for (int c = 0; c < 10; ++c) CHECK(per_class[std::size_t(c)] == 6000);
  CHECK(byte_sum(d) == 3431114169ull);
  // Image 0, pixel by pixel landmarks (row-major 28×28).
  const float* im0 = d.image(0);
  double s0 = 0;
  for (int k = 0; k < 784; ++k) s0 += double(std::lround(im0[k] * 255.0f));
  CHECK(s0 == 76247.0);
  for (int k = 0; k < 96; ++k) REQUIRE(im0[k] == 0.0f);
  CHECK(im0[96] > 0.0f);
  CHECK(im0[417] == 1.0f);
  CHECK(im0[14 * 28 + 12] == 237.0f / 255.0f);
}

TEST_CASE("fashion-mnist: test is 10000×1×28×28, balanced, labels start 9 2 1 1") {
  require_package_or_skip();
  const Dataset d = load_fashion_mnist(Split::test);
  CHECK(d.name == "fashion-mnist/test");
  CHECK(d.size() == 10000);
  CHECK(d.images.size() == 10000u * 784u);
  CHECK(std::vector<std::int32_t>(d.labels.begin(), d.labels.begin() + 4) ==
        std::vector<std::int32_t>{9, 2, 1, 1});
  std::array<int, 10> per_class{};
  for (std::int32_t y : d.labels) {
    REQUIRE(y >= 0);
    REQUIRE(y <= 9);
    ++per_class[std::size_t(y)];
  }
  for (int c = 0; c < 10; ++c) CHECK(per_class[std::size_t(c)] == 1000);
  CHECK(byte_sum(d) == 573469082ull);
}

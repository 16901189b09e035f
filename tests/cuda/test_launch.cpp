// cuda/launch.hpp: the 1-D grid-stride launch shape, blocks = min(⌈n / threads⌉, max_blocks).
#include <doctest/doctest.h>

#include <cstddef>

#include "common/errors.hpp"
#include "cuda/launch.hpp"

using namespace wdlab;
using namespace wdlab::cuda;

TEST_CASE("launch_1d: nothing to do launches no block") {
  const Launch1d l = launch_1d(0);
  CHECK(l.blocks == 0);
  CHECK(l.threads == 256);
}

TEST_CASE("launch_1d: blocks round up to cover every element") {
  CHECK(launch_1d(1).blocks == 1);
  CHECK(launch_1d(256).blocks == 1);
  CHECK(launch_1d(257).blocks == 2);
  CHECK(launch_1d(1000003).blocks == 3907);  // ⌈1000003 / 256⌉
  CHECK(launch_1d(100, 32).blocks == 4);
  CHECK(launch_1d(100, 32).threads == 32);
}

TEST_CASE("launch_1d: the grid is capped and the kernel's stride loop covers the rest") {
  const std::size_t n = std::size_t{1} << 40;
  const Launch1d l = launch_1d(n, 256, 65535);
  CHECK(l.blocks == 65535);
  CHECK(launch_1d(n, 128, 1000).blocks == 1000);
}

TEST_CASE("launch_1d: invalid block sizes are bugs") {
  CHECK_THROWS_AS(launch_1d(10, 0), InternalError);
  CHECK_THROWS_AS(launch_1d(10, 1025), InternalError);
  CHECK_THROWS_AS(launch_1d(10, 256, 0), InternalError);
  CHECK(launch_1d(10, 1024).blocks == 1);
}

// cuda/device_buffer.hpp without a device: zero-size buffers make no CUDA call, moves transfer
// ownership, size mismatches are caller bugs (InternalError), and an allocation on a machine
// without a GPU fails with the runtime's reason rather than crashing.
#include <doctest/doctest.h>

#include <cuda_runtime_api.h>

#include <cstdint>
#include <limits>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "cuda/device_buffer.hpp"
#include "cuda/device_query.hpp"

using namespace wdlab;
using namespace wdlab::cuda;

TEST_CASE("a zero-size DeviceBuffer holds nothing and copies nothing") {
  DeviceBuffer<float> buf(0);
  CHECK(buf.size() == 0);
  CHECK(buf.bytes() == 0);
  CHECK(buf.empty());
  CHECK(buf.data() == nullptr);
  std::vector<float> none;
  CHECK_NOTHROW(buf.copy_from_host(none, nullptr));
  CHECK_NOTHROW(buf.copy_to_host(none, nullptr));
  CHECK_NOTHROW(buf.fill_zero(nullptr));
}

TEST_CASE("DeviceBuffer copies check the host span's size") {
  DeviceBuffer<float> buf(0);
  std::vector<float> three(3);
  CHECK_THROWS_WITH_AS(buf.copy_from_host(three, nullptr),
                       "DeviceBuffer::copy_from_host: host span has 3 elements, buffer has 0",
                       InternalError);
  CHECK_THROWS_WITH_AS(buf.copy_to_host(three, nullptr),
                       "DeviceBuffer::copy_to_host: host span has 3 elements, buffer has 0",
                       InternalError);
}

TEST_CASE("DeviceBuffer moves leave the source empty") {
  DeviceBuffer<std::int32_t> a;
  DeviceBuffer<std::int32_t> b(std::move(a));
  CHECK(a.empty());
  CHECK(b.empty());
  a = std::move(b);
  CHECK(a.data() == nullptr);
  static_assert(!std::is_copy_constructible_v<DeviceBuffer<float>>);
  static_assert(!std::is_copy_assignable_v<DeviceBuffer<float>>);
  static_assert(std::is_nothrow_move_constructible_v<DeviceBuffer<float>>);
  static_assert(std::is_nothrow_move_assignable_v<DeviceBuffer<float>>);
}

TEST_CASE("DeviceBuffer refuses a byte count that overflows size_t") {
  CHECK_THROWS_AS(DeviceBuffer<double>(std::numeric_limits<std::size_t>::max() / 4), DeviceError);
}

TEST_CASE("DeviceBuffer allocation without a GPU throws CallError with the runtime's error") {
  const DeviceStatus s = query_devices();
  if (!no_gpu_present(s)) {
    MESSAGE("a GPU is present; allocation is tested by test_cuda_gpu");
    DeviceBuffer<float> buf(16);
    CHECK(buf.data() != nullptr);
    return;
  }
  try {
    DeviceBuffer<float> buf(16);
    FAIL("allocated device memory without a GPU");
  } catch (const CallError& e) {
    CHECK(e.library() == Library::cuda_runtime);
    CHECK(e.code() == s.error);
    CHECK(std::string(e.what()).find("cudaMalloc(") != std::string::npos);
  }
}

// cuda::Context and DeviceBuffer on a device: stream and handles bound, memory round trips, the
// grow-only workspace, our own kernel image loads, failures surface as CallError.
// Every case starts with require_gpu_or_skip(): exit 77 (skipped) on a machine without a GPU.
#include <doctest/doctest.h>

#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <cudnn.h>

#include <cstdint>
#include <string>
#include <vector>

#include "cuda/context.hpp"
#include "gpu_iota.hpp"
#include "gpu_guard.hpp"

using namespace wdlab;
using namespace wdlab::cuda;
using wdlab::cuda::testing::require_gpu_or_skip;

TEST_CASE("Context binds one device and a stream with cuBLAS and cuDNN handles on it") {
  require_gpu_or_skip();
  Context ctx;
  MESSAGE(describe(query_devices()));
  CHECK(ctx.device() == 0);
  CHECK_FALSE(ctx.info().name.empty());
  CHECK(ctx.stream() != nullptr);  // not the legacy default stream
  int current = -1;
  REQUIRE(cudaGetDevice(&current) == cudaSuccess);
  CHECK(current == ctx.device());

  cudaStream_t cublas_stream = nullptr;
  REQUIRE(cublasGetStream(ctx.cublas(), &cublas_stream) == CUBLAS_STATUS_SUCCESS);
  CHECK(cublas_stream == ctx.stream());

  cudaStream_t cudnn_stream = nullptr;
  REQUIRE(cudnnGetStream(ctx.cudnn(), &cudnn_stream) == CUDNN_STATUS_SUCCESS);
  CHECK(cudnn_stream == ctx.stream());

  unsigned flags = 0;
  REQUIRE(cudaStreamGetFlags(ctx.stream(), &flags) == cudaSuccess);
  CHECK(flags == cudaStreamNonBlocking);
}

TEST_CASE("Context refuses a device index that does not exist") {
  require_gpu_or_skip();
  const DeviceStatus s = query_devices();
  CHECK_THROWS_WITH_AS(Context(s.count), doctest::Contains("does not exist"), DeviceError);
  CHECK_THROWS_AS(Context(-1), DeviceError);
}

TEST_CASE("DeviceBuffer round-trips host to device to host") {
  require_gpu_or_skip();
  Context ctx;
  std::vector<float> host(1000);
  for (std::size_t i = 0; i < host.size(); ++i) host[i] = 0.5f * static_cast<float>(i) - 7.25f;
  DeviceBuffer<float> dev(host.size());
  CHECK(dev.size() == 1000);
  CHECK(dev.bytes() == 4000);
  REQUIRE(dev.data() != nullptr);
  dev.copy_from_host(host, ctx.stream());

  // Through a move: ownership of the same device memory changes hands.
  float* const where = dev.data();
  DeviceBuffer<float> moved(std::move(dev));
  CHECK(moved.data() == where);
  CHECK(dev.data() == nullptr);

  std::vector<float> back(host.size(), -1.0f);
  moved.copy_to_host(back, ctx.stream());
  CHECK(back == host);

  moved.fill_zero(ctx.stream());
  moved.copy_to_host(back, ctx.stream());
  CHECK(back == std::vector<float>(host.size(), 0.0f));
}

TEST_CASE("Context workspace only grows") {
  require_gpu_or_skip();
  Context ctx;
  CHECK(ctx.workspace_bytes() == 0);
  DeviceBuffer<std::byte>& w = ctx.workspace(100);
  CHECK(w.size() >= 100);
  const std::byte* first = w.data();
  CHECK(first != nullptr);
  CHECK(ctx.workspace(50).data() == first);  // smaller request: same buffer
  CHECK(ctx.workspace_bytes() == 100);
  CHECK(ctx.workspace(1 << 20).size() >= (1u << 20));
  CHECK(ctx.workspace_bytes() == (1u << 20));
  CHECK(ctx.workspace(100).size() == (1u << 20));  // never shrinks
}

TEST_CASE("our own kernel runs: iota over more than one block") {
  require_gpu_or_skip();
  Context ctx;
  const std::size_t n = 1000003;  // not a multiple of the block size
  DeviceBuffer<std::int32_t> out(n);
  out.fill_zero(ctx.stream());
  iota(ctx, out);  // a missing kernel image (wrong architecture) throws here
  std::vector<std::int32_t> host(n, -1);
  out.copy_to_host(host, ctx.stream());
  std::size_t wrong = 0;
  for (std::size_t i = 0; i < n; ++i) wrong += host[i] != static_cast<std::int32_t>(i);
  CHECK(wrong == 0);
}

TEST_CASE("a failing runtime call throws CallError and leaves no error behind") {
  require_gpu_or_skip();
  Context ctx;
  const int count = query_devices().count;
  try {
    WDLAB_CUDA_CHECK(cudaSetDevice(count + 7));
    FAIL("no exception");
  } catch (const CallError& e) {
    CHECK(e.code() == cudaErrorInvalidDevice);
    CHECK(std::string(e.what()).find("cudaSetDevice(count + 7) failed: cudaErrorInvalidDevice") !=
          std::string::npos);
  }
  CHECK(cudaGetLastError() == cudaSuccess);
  CHECK_NOTHROW(ctx.synchronize());
}

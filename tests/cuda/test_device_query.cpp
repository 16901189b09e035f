// cuda/device_query.hpp: the usable/unusable decision for every situation (pure, fake runtime
// answers), and what this machine's runtime actually says (no GPU here: usable = false).
#include <doctest/doctest.h>

#include <cublas_api.h>
#include <cuda_runtime_api.h>
#include <cudnn.h>

#include <algorithm>
#include <cctype>
#include <string>
#include <vector>

#include "cuda/context.hpp"
#include "cuda/device_query.hpp"
#include "wdlab/build_info.hpp"

using namespace wdlab;
using namespace wdlab::cuda;

namespace {

DeviceInfo h200(int index = 0) {
  return DeviceInfo{index, "NVIDIA H200", 9, 0, 150'754'820'096, 132, 13000, 13000};
}
DeviceInfo t4(int index = 0) { return DeviceInfo{index, "Tesla T4", 7, 5, 15'637'086'208, 40, 13000, 13000}; }

bool starts_with(const std::string& s, const std::string& prefix) { return s.rfind(prefix, 0) == 0; }
bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("means_no_gpu: no driver and no device mean no GPU, other errors do not") {
  CHECK(means_no_gpu(cudaErrorInsufficientDriver));
  CHECK(means_no_gpu(cudaErrorNoDevice));
  CHECK(means_no_gpu(35));
  CHECK(means_no_gpu(100));
  CHECK_FALSE(means_no_gpu(cudaSuccess));
  CHECK_FALSE(means_no_gpu(cudaErrorInitializationError));  // driver there, failed to start
  CHECK_FALSE(means_no_gpu(cudaErrorInvalidDevice));
  CHECK_FALSE(means_no_gpu(cudaErrorStubLibrary));  // the toolkit's stub libcuda in the path
  CHECK_FALSE(means_no_gpu(cudaErrorUnknown));
}

TEST_CASE("assess_devices: a runtime error makes it unusable, with the error as the reason") {
  const std::string desc = describe_status(Library::cuda_runtime, cudaErrorInsufficientDriver);
  const DeviceStatus s = assess_devices(0, {}, cudaErrorInsufficientDriver, desc, 90);
  CHECK_FALSE(s.usable);
  CHECK(s.count == 0);
  CHECK(s.error == 35);
  CHECK(s.reason ==
        "no usable CUDA device: cudaErrorInsufficientDriver (35): CUDA driver version is "
        "insufficient for CUDA runtime version");
  CHECK(no_gpu_present(s));
}

TEST_CASE("assess_devices: zero devices without an error is unusable and means no GPU") {
  const DeviceStatus s = assess_devices(0, {}, 0, "", 90);
  CHECK_FALSE(s.usable);
  CHECK(s.reason == "no usable CUDA device: the CUDA runtime reports no device");
  CHECK(no_gpu_present(s));
}

TEST_CASE("assess_devices: a device this build can run on is usable") {
  const DeviceStatus s = assess_devices(1, {h200()}, 0, "", 90);
  CHECK(s.usable);
  CHECK(s.count == 1);
  CHECK(s.reason.empty());
  REQUIRE(s.devices.size() == 1);
  CHECK(s.devices[0].name == "NVIDIA H200");
  CHECK_FALSE(no_gpu_present(s));
}

TEST_CASE("assess_devices: a device below the built architectures is unusable, and a GPU") {
  const DeviceStatus s = assess_devices(1, {t4()}, 0, "", 90);
  CHECK_FALSE(s.usable);
  CHECK(s.reason ==
        "no usable CUDA device: this build has code for compute capability >= 9.0 "
        "(CMAKE_CUDA_ARCHITECTURES); device 0 (Tesla T4) is 7.5");
  CHECK_FALSE(no_gpu_present(s));  // the GPU tests must fail here, not skip
}

TEST_CASE("assess_devices: one runnable device among several is enough") {
  const DeviceStatus s = assess_devices(2, {t4(0), h200(1)}, 0, "", 90);
  CHECK(s.usable);
  CHECK(s.count == 2);
}

TEST_CASE("assess_devices: an unknown minimum architecture accepts any device") {
  CHECK(assess_devices(1, {t4()}, 0, "", 0).usable);
}

TEST_CASE("assess_devices: failing to read a device's properties is a present, unusable GPU") {
  const DeviceStatus s =
      assess_devices(2, {h200(0)}, cudaErrorInitializationError, "cudaGetDeviceProperties(...)", 90);
  CHECK_FALSE(s.usable);
  CHECK(s.reason == "no usable CUDA device: cudaGetDeviceProperties(...)");
  CHECK_FALSE(no_gpu_present(s));
}

TEST_CASE("can_run compares compute capability with the build's minimum") {
  CHECK(can_run(h200(), 90));
  CHECK(can_run(DeviceInfo{0, "B200", 10, 0, 0, 0, 0, 0}, 90));
  CHECK_FALSE(can_run(DeviceInfo{0, "A100", 8, 0, 0, 0, 0, 0}, 90));
  CHECK_FALSE(can_run(DeviceInfo{0, "RTX 4090", 8, 9, 0, 0, 0, 0}, 90));
  CHECK(can_run(DeviceInfo{0, "RTX 4090", 8, 9, 0, 0, 0, 0}, 89));
}

TEST_CASE("built_min_compute_capability is the lowest of CMAKE_CUDA_ARCHITECTURES") {
  // Recomputed from the architectures recorded in build_info.hpp ("90-real;90-virtual",
  // "80;90", ...): the lowest leading number of the entries.
  const std::string archs = wdlab::build::cuda_architectures;
  MESSAGE("CMAKE_CUDA_ARCHITECTURES = " << archs);
  int lowest = 0;
  std::size_t start = 0;
  while (start <= archs.size()) {
    const std::size_t end = std::min(archs.find(';', start), archs.size());
    const std::string entry = archs.substr(start, end - start);
    std::size_t digits = 0;
    while (digits < entry.size() && std::isdigit(static_cast<unsigned char>(entry[digits]))) ++digits;
    if (digits > 0) {
      const int cc = std::stoi(entry.substr(0, digits));
      lowest = lowest == 0 ? cc : std::min(lowest, cc);
    }
    start = end + 1;
  }
  CHECK(built_min_compute_capability() == lowest);
}

TEST_CASE("format_cuda_version reads 1000·major + 10·minor") {
  CHECK(format_cuda_version(13000) == "13.0");
  CHECK(format_cuda_version(12080) == "12.8");
  CHECK(format_cuda_version(0) == "none");
}

TEST_CASE("describe prints the verdict and one line per device") {
  CHECK(describe(assess_devices(1, {h200()}, 0, "", 90)) ==
        "CUDA: usable, 1 device(s)\n"
        "  device 0: NVIDIA H200, compute capability 9.0, 140.4 GiB, 132 SMs, driver 13.0, "
        "runtime 13.0");
  CHECK(describe(assess_devices(0, {}, 0, "", 90)) ==
        "CUDA: not usable: no usable CUDA device: the CUDA runtime reports no device");
}

TEST_CASE("query_devices on this machine is consistent with its verdict") {
  const DeviceStatus s = query_devices();
  MESSAGE(describe(s));
  CHECK(s.count == static_cast<int>(s.devices.size()));
  if (s.usable) {
    CHECK(s.reason.empty());
    CHECK(s.error == 0);
    REQUIRE_FALSE(s.devices.empty());
    CHECK_FALSE(s.devices[0].name.empty());
    CHECK(s.devices[0].sm_count > 0);
    CHECK(s.devices[0].total_memory_bytes > 0);
    CHECK(s.devices[0].runtime_version == CUDART_VERSION);
  } else {
    CHECK(starts_with(s.reason, "no usable CUDA device: "));
    if (s.error != 0) CHECK(contains(s.reason, cudaGetErrorName(static_cast<cudaError_t>(s.error))));
  }
  // With a working driver, the query leaves nothing in the runtime's last-error slot. (Without
  // a driver every runtime call, cudaGetLastError included, answers the initialization error.)
  if (!no_gpu_present(s)) CHECK(cudaGetLastError() == cudaSuccess);
  // Asking again gives the same answer.
  const DeviceStatus again = query_devices();
  CHECK(again.usable == s.usable);
  CHECK(again.reason == s.reason);
}

TEST_CASE("Context without a usable device throws DeviceError with query_devices' reason") {
  const DeviceStatus s = query_devices();
  if (s.usable) {
    MESSAGE("a device is usable here; the failure path is covered on machines without one");
    CHECK_THROWS_AS(Context(s.count), DeviceError);  // one past the last device
    return;
  }
  try {
    Context ctx;
    FAIL("constructed a Context without a usable device");
  } catch (const CallError&) {
    FAIL("expected the one-line DeviceError from query_devices, got a CallError");
  } catch (const DeviceError& e) {
    CHECK(std::string(e.what()) == s.reason);
    CHECK(e.code() == ExitCode::device);
  }
}

TEST_CASE("library_versions: the loaded libraries match the headers' major versions") {
  const LibraryVersions v = library_versions();
  CHECK(v.runtime == CUDART_VERSION);  // static cudart: exactly the toolkit's
  CHECK(v.cublas / 10000 == CUBLAS_VER_MAJOR);
  CHECK(v.cudnn / 10000 == CUDNN_MAJOR);
  CHECK(v.cudnn_headers == CUDNN_VERSION);
  CHECK(v.driver >= 0);
  MESSAGE("driver " << format_cuda_version(v.driver) << ", runtime " << format_cuda_version(v.runtime)
                    << ", cuBLAS " << v.cublas << ", cuDNN " << v.cudnn << " (headers "
                    << v.cudnn_headers << ")");
}

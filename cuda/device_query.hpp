#pragma once
// Which CUDA devices this process can use, and why not. Runs on any machine: where there is no
// GPU the answer is usable = false with a one-line reason, never an exception. `wdlab info`
// prints describe(query_devices()); the GPU tests skip when no_gpu_present(status).
#include <cstddef>
#include <string>
#include <vector>

#include "cuda/check.hpp"

namespace wdlab::cuda {

struct DeviceInfo {
  int index = 0;
  std::string name;
  int cc_major = 0;  // compute capability major.minor (H200: 9.0)
  int cc_minor = 0;
  std::size_t total_memory_bytes = 0;
  int sm_count = 0;
  int driver_version = 0;   // CUDA version the driver supports, 1000·major + 10·minor (13000)
  int runtime_version = 0;  // CUDA runtime linked into wdlab, same encoding
};

struct DeviceStatus {
  bool usable = false;  // at least one device that this build's code can run on
  int count = 0;        // devices the runtime reports (0 when it reports an error)
  std::string reason;   // why not usable; empty when usable
  std::vector<DeviceInfo> devices;
  int error = 0;        // the cudaError_t of the failing runtime call; 0 when none failed
};

/// Asks the CUDA runtime. Never throws for a missing or unusable device; clears the runtime's
/// last-error slot after a failed query.
DeviceStatus query_devices();

/// The decision of query_devices(), given what the runtime said. Pure, so every branch is tested
/// without a GPU. `count`: what cudaGetDeviceCount reported; `devices`: those whose properties
/// were read; `error`/`error_description`: the failing cudaGetDeviceCount or
/// cudaGetDeviceProperties (0 and "" when none failed); `min_cc`: 10·major + minor of the lowest
/// architecture this build has code for (0 = unknown, accept any device).
DeviceStatus assess_devices(int count, std::vector<DeviceInfo> devices, int error,
                            const std::string& error_description, int min_cc);

/// Whether this build's code runs on `device` (compute capability ≥ min_cc, or min_cc = 0).
bool can_run(const DeviceInfo& device, int min_cc);

/// cudaErrorInsufficientDriver (35: no driver, the development machines) and cudaErrorNoDevice
/// (100): there is no GPU here. Other errors mean a GPU that is there but broken or misconfigured.
bool means_no_gpu(int cuda_error);

/// True when the status says "no GPU on this machine" (a test may skip), false when a GPU is
/// there, usable or not (a test must run, or fail with the reason).
bool no_gpu_present(const DeviceStatus& status);

/// The lowest compute capability this build has code for (from CMAKE_CUDA_ARCHITECTURES).
int built_min_compute_capability();

/// 13000 → "13.0", 12080 → "12.8"; 0 → "none" (no driver).
std::string format_cuda_version(int version);

/// Several lines for `wdlab info`: usable or the reason, then one line per device.
std::string describe(const DeviceStatus& status);

/// Versions of the libraries loaded into this process; needs no GPU.
struct LibraryVersions {
  int driver = 0;            // cudaDriverGetVersion; 0 without a driver
  int runtime = 0;           // cudaRuntimeGetVersion
  int cublas = 0;            // 10000·major + 100·minor + patch, as CUBLAS_VERSION
  std::size_t cudnn = 0;     // cudnnGetVersion(): the loaded library, as CUDNN_VERSION
  std::size_t cudnn_headers = 0;  // CUDNN_VERSION this build was compiled against
};
LibraryVersions library_versions();

}  // namespace wdlab::cuda

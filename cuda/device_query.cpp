// Device discovery: gather what the CUDA runtime says (query_devices), decide in plain code
// (assess_devices) so the decision is unit-tested on machines without a GPU.
#include "cuda/device_query.hpp"

#include <cublas_api.h>
#include <cuda_runtime_api.h>
#include <cudnn.h>
#include <fmt/format.h>

#include <algorithm>
#include <utility>

#ifndef WDLAB_CUDA_MIN_CC
#error "WDLAB_CUDA_MIN_CC comes from cuda/CMakeLists.txt (lowest of CMAKE_CUDA_ARCHITECTURES)"
#endif

namespace wdlab::cuda {
namespace {

constexpr const char* kNoDevice = "no usable CUDA device: ";

std::string cc_string(int cc) { return fmt::format("{}.{}", cc / 10, cc % 10); }

std::string device_line(const DeviceInfo& d) {
  return fmt::format("device {}: {}, compute capability {}.{}, {:.1f} GiB, {} SMs, driver {}, runtime {}",
                     d.index, d.name, d.cc_major, d.cc_minor,
                     static_cast<double>(d.total_memory_bytes) / (1024.0 * 1024.0 * 1024.0),
                     d.sm_count, format_cuda_version(d.driver_version),
                     format_cuda_version(d.runtime_version));
}

}  // namespace

bool means_no_gpu(int cuda_error) {
  return cuda_error == static_cast<int>(cudaErrorInsufficientDriver) ||
         cuda_error == static_cast<int>(cudaErrorNoDevice);
}

bool can_run(const DeviceInfo& device, int min_cc) {
  return min_cc == 0 || 10 * device.cc_major + device.cc_minor >= min_cc;
}

DeviceStatus assess_devices(int count, std::vector<DeviceInfo> devices, int error,
                            const std::string& error_description, int min_cc) {
  DeviceStatus status;
  status.count = count;
  status.error = error;
  status.devices = std::move(devices);
  if (error != 0) {
    status.reason = kNoDevice + error_description;
    return status;
  }
  if (count == 0 || status.devices.empty()) {
    status.reason = std::string(kNoDevice) + "the CUDA runtime reports no device";
    return status;
  }
  status.usable = std::any_of(status.devices.begin(), status.devices.end(),
                              [&](const DeviceInfo& d) { return can_run(d, min_cc); });
  if (!status.usable) {
    status.reason = fmt::format("{}this build has code for compute capability >= {} "
                                "(CMAKE_CUDA_ARCHITECTURES); ",
                                kNoDevice, cc_string(min_cc));
    for (std::size_t i = 0; i < status.devices.size(); ++i) {
      const DeviceInfo& d = status.devices[i];
      status.reason += fmt::format("{}device {} ({}) is {}.{}", i == 0 ? "" : ", ", d.index,
                                   d.name, d.cc_major, d.cc_minor);
    }
  }
  return status;
}

bool no_gpu_present(const DeviceStatus& status) {
  return status.devices.empty() && status.count == 0 &&
         (status.error == 0 || means_no_gpu(status.error));
}

int built_min_compute_capability() { return WDLAB_CUDA_MIN_CC; }

std::string format_cuda_version(int version) {
  if (version <= 0) return "none";
  return fmt::format("{}.{}", version / 1000, (version % 1000) / 10);
}

DeviceStatus query_devices() {
  const int min_cc = built_min_compute_capability();
  int count = 0;
  const cudaError_t count_error = cudaGetDeviceCount(&count);
  if (count_error != cudaSuccess) {
    static_cast<void>(cudaGetLastError());  // not left behind for the next checked call
    return assess_devices(0, {}, count_error,
                          describe_status(Library::cuda_runtime, count_error), min_cc);
  }
  int driver = 0;
  int runtime = 0;
  // Both answer without a device; a failure leaves 0, printed as "none".
  static_cast<void>(cudaDriverGetVersion(&driver));
  static_cast<void>(cudaRuntimeGetVersion(&runtime));

  std::vector<DeviceInfo> devices;
  for (int i = 0; i < count; ++i) {
    cudaDeviceProp prop{};
    const cudaError_t e = cudaGetDeviceProperties(&prop, i);
    if (e != cudaSuccess) {
      static_cast<void>(cudaGetLastError());
      return assess_devices(count, std::move(devices), e,
                            fmt::format("cudaGetDeviceProperties(device {}): {}", i,
                                        describe_status(Library::cuda_runtime, e)),
                            min_cc);
    }
    devices.push_back(DeviceInfo{i, prop.name, prop.major, prop.minor, prop.totalGlobalMem,
                                 prop.multiProcessorCount, driver, runtime});
  }
  return assess_devices(count, std::move(devices), 0, "", min_cc);
}

std::string describe(const DeviceStatus& status) {
  std::string out = status.usable
                        ? fmt::format("CUDA: usable, {} device(s)", status.count)
                        : fmt::format("CUDA: not usable: {}", status.reason);
  for (const DeviceInfo& d : status.devices) out += "\n  " + device_line(d);
  return out;
}

LibraryVersions library_versions() {
  LibraryVersions v;
  static_cast<void>(cudaDriverGetVersion(&v.driver));
  static_cast<void>(cudaRuntimeGetVersion(&v.runtime));
  int major = 0, minor = 0, patch = 0;
  if (cublasGetProperty(MAJOR_VERSION, &major) == CUBLAS_STATUS_SUCCESS &&
      cublasGetProperty(MINOR_VERSION, &minor) == CUBLAS_STATUS_SUCCESS &&
      cublasGetProperty(PATCH_LEVEL, &patch) == CUBLAS_STATUS_SUCCESS)
    v.cublas = 10000 * major + 100 * minor + patch;
  v.cudnn = cudnnGetVersion();
  v.cudnn_headers = CUDNN_VERSION;
  return v;
}

}  // namespace wdlab::cuda

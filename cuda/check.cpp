// Naming of status codes for cuda/check.hpp. The only file that needs every library's header.
#include "cuda/check.hpp"

#include <cublas_api.h>
#include <cuda_runtime_api.h>
#include <cudnn.h>
#include <cusolver_common.h>

#include <array>
#include <string_view>
#include <utility>

namespace wdlab::cuda {
namespace {

// cuSOLVER has no cusolverGetStatusString; names as in cusolver_common.h.
constexpr std::array<std::pair<cusolverStatus_t, const char*>, 13> kCusolverNames{{
    {CUSOLVER_STATUS_SUCCESS, "CUSOLVER_STATUS_SUCCESS"},
    {CUSOLVER_STATUS_NOT_INITIALIZED, "CUSOLVER_STATUS_NOT_INITIALIZED"},
    {CUSOLVER_STATUS_ALLOC_FAILED, "CUSOLVER_STATUS_ALLOC_FAILED"},
    {CUSOLVER_STATUS_INVALID_VALUE, "CUSOLVER_STATUS_INVALID_VALUE"},
    {CUSOLVER_STATUS_ARCH_MISMATCH, "CUSOLVER_STATUS_ARCH_MISMATCH"},
    {CUSOLVER_STATUS_MAPPING_ERROR, "CUSOLVER_STATUS_MAPPING_ERROR"},
    {CUSOLVER_STATUS_EXECUTION_FAILED, "CUSOLVER_STATUS_EXECUTION_FAILED"},
    {CUSOLVER_STATUS_INTERNAL_ERROR, "CUSOLVER_STATUS_INTERNAL_ERROR"},
    {CUSOLVER_STATUS_MATRIX_TYPE_NOT_SUPPORTED, "CUSOLVER_STATUS_MATRIX_TYPE_NOT_SUPPORTED"},
    {CUSOLVER_STATUS_NOT_SUPPORTED, "CUSOLVER_STATUS_NOT_SUPPORTED"},
    {CUSOLVER_STATUS_ZERO_PIVOT, "CUSOLVER_STATUS_ZERO_PIVOT"},
    {CUSOLVER_STATUS_INVALID_LICENSE, "CUSOLVER_STATUS_INVALID_LICENSE"},
    {CUSOLVER_STATUS_INVALID_WORKSPACE, "CUSOLVER_STATUS_INVALID_WORKSPACE"},
}};

const char* cusolver_name(int code) {
  for (const auto& [status, name] : kCusolverNames)
    if (static_cast<int>(status) == code) return name;
  return "CUSOLVER_STATUS_UNRECOGNIZED";
}

}  // namespace

const char* library_name(Library library) noexcept {
  switch (library) {
    case Library::cuda_runtime: return "CUDA runtime";
    case Library::cublas: return "cuBLAS";
    case Library::cudnn: return "cuDNN";
    case Library::cusolver: return "cuSOLVER";
  }
  return "unknown library";
}

std::string describe_cuda_error(int code, const char* name, const char* text) {
  std::string out = name ? name : "unknown";
  out += " (" + std::to_string(code) + ")";
  const std::string_view detail = text ? text : "unknown";
  if (!detail.empty()) {
    out += ": ";
    out += detail;
  }
  return out;
}

std::string describe_status(Library library, int code) {
  switch (library) {
    case Library::cuda_runtime: {
      const auto status = static_cast<cudaError_t>(code);
      return describe_cuda_error(code, cudaGetErrorName(status), cudaGetErrorString(status));
    }
    case Library::cublas: {
      const auto status = static_cast<cublasStatus_t>(code);
      return describe_cuda_error(code, cublasGetStatusName(status), cublasGetStatusString(status));
    }
    case Library::cudnn:
      // cudnnGetErrorString gives the enum's name; the text is the per-call detail, added by
      // throw_call_error from cudnnGetLastErrorString.
      return describe_cuda_error(code, cudnnGetErrorString(static_cast<cudnnStatus_t>(code)), "");
    case Library::cusolver:
      return describe_cuda_error(code, cusolver_name(code), "");
  }
  return describe_cuda_error(code, "unknown library", "");
}

std::string format_call_failure(const char* file, int line, const char* expression,
                                const std::string& description) {
  return std::string(file ? file : "?") + ":" + std::to_string(line) + ": " +
         (expression ? expression : "?") + " failed: " + description;
}

void throw_call_error(Library library, int code, const char* expression, const char* file,
                      int line) {
  std::string description = describe_status(library, code);
  if (library == Library::cudnn) {
    // cuDNN 9 keeps a message for the last failure of this thread (which check, which value).
    std::array<char, 512> detail{};
    cudnnGetLastErrorString(detail.data(), detail.size());
    if (detail[0] != '\0') description += std::string(": ") + detail.data();
  }
  if (library == Library::cuda_runtime) {
    // Clear the runtime's last-error slot so a later WDLAB_CUDA_CHECK_LAUNCH() does not report
    // this failure a second time. (Sticky errors stay: the context is unusable after them.)
    static_cast<void>(cudaGetLastError());
  }
  throw CallError(library, code, format_call_failure(file, line, expression, description));
}

}  // namespace wdlab::cuda

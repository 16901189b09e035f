// cuda/check.hpp: the checked-call macros and the naming of every library's status codes.
// Runs without a GPU: naming asks the libraries (no device needed), failures are simulated by
// passing failing status values through the macros.
#include <doctest/doctest.h>

#include <cublas_api.h>
#include <cuda_runtime_api.h>
#include <cudnn.h>
#include <cusolver_common.h>

#include <string>

#include "cuda/check.hpp"

using namespace wdlab;
using namespace wdlab::cuda;

namespace {

// Stand-ins for library calls that return a given status, counting how often they are called.
template <class Status>
struct FakeCall {
  Status status;
  int calls = 0;
  Status operator()() {
    ++calls;
    return status;
  }
};

std::string file_line(int line) { return std::string(__FILE__) + ":" + std::to_string(line); }

}  // namespace

TEST_CASE("describe_cuda_error formats name, code and text") {
  CHECK(describe_cuda_error(35, "cudaErrorInsufficientDriver",
                            "CUDA driver version is insufficient for CUDA runtime version") ==
        "cudaErrorInsufficientDriver (35): CUDA driver version is insufficient for CUDA runtime "
        "version");
  CHECK(describe_cuda_error(2000, "CUDNN_STATUS_BAD_PARAM", "") == "CUDNN_STATUS_BAD_PARAM (2000)");
  CHECK(describe_cuda_error(7, nullptr, nullptr) == "unknown (7): unknown");
}

TEST_CASE("format_call_failure names file, line, expression and description") {
  CHECK(format_call_failure("cuda/context.cpp", 42, "cublasCreate(&h)", "X (1): y") ==
        "cuda/context.cpp:42: cublasCreate(&h) failed: X (1): y");
}

TEST_CASE("library_name names each library") {
  CHECK(std::string(library_name(Library::cuda_runtime)) == "CUDA runtime");
  CHECK(std::string(library_name(Library::cublas)) == "cuBLAS");
  CHECK(std::string(library_name(Library::cudnn)) == "cuDNN");
  CHECK(std::string(library_name(Library::cusolver)) == "cuSOLVER");
}

TEST_CASE("describe_status: CUDA runtime codes are named by the runtime") {
  CHECK(describe_status(Library::cuda_runtime, cudaErrorInsufficientDriver) ==
        "cudaErrorInsufficientDriver (35): CUDA driver version is insufficient for CUDA runtime "
        "version");
  CHECK(describe_status(Library::cuda_runtime, cudaErrorNoDevice) ==
        "cudaErrorNoDevice (100): no CUDA-capable device is detected");
}

TEST_CASE("describe_status: cuBLAS codes are named by cuBLAS") {
  const std::string s = describe_status(Library::cublas, CUBLAS_STATUS_INVALID_VALUE);
  CHECK(s.rfind("CUBLAS_STATUS_INVALID_VALUE (7): ", 0) == 0);
  CHECK(s.size() > std::string("CUBLAS_STATUS_INVALID_VALUE (7): ").size());  // has a text
}

TEST_CASE("describe_status: cuDNN codes are named by cuDNN") {
  CHECK(describe_status(Library::cudnn, CUDNN_STATUS_BAD_PARAM) == "CUDNN_STATUS_BAD_PARAM (2000)");
  CHECK(describe_status(Library::cudnn, CUDNN_STATUS_NOT_INITIALIZED) ==
        "CUDNN_STATUS_NOT_INITIALIZED (1001)");
}

TEST_CASE("describe_status: cuSOLVER codes are named from the table") {
  CHECK(describe_status(Library::cusolver, CUSOLVER_STATUS_ZERO_PIVOT) ==
        "CUSOLVER_STATUS_ZERO_PIVOT (10)");
  CHECK(describe_status(Library::cusolver, CUSOLVER_STATUS_INVALID_WORKSPACE) ==
        "CUSOLVER_STATUS_INVALID_WORKSPACE (31)");
  CHECK(describe_status(Library::cusolver, 12345) == "CUSOLVER_STATUS_UNRECOGNIZED (12345)");
}

TEST_CASE("WDLAB_CUDA_CHECK throws CallError with file:line, expression and error name") {
  FakeCall<cudaError_t> call{cudaErrorMemoryAllocation};
  int line = 0;
  try {
    line = __LINE__; WDLAB_CUDA_CHECK(call());
    FAIL("no exception");
  } catch (const CallError& e) {
    CHECK(e.library() == Library::cuda_runtime);
    CHECK(e.code() == 2);
    CHECK(std::string(e.what()) ==
          file_line(line) + ": call() failed: cudaErrorMemoryAllocation (2): out of memory");
  }
  CHECK(call.calls == 1);
  // That the runtime's last-error slot is cleared is tested on a device (test_cuda_gpu): without
  // a driver every runtime call, cudaGetLastError included, answers cudaErrorInsufficientDriver.
}

TEST_CASE("a CallError is a DeviceError with exit code 6") {
  FakeCall<cudaError_t> call{cudaErrorInvalidValue};
  try {
    WDLAB_CUDA_CHECK(call());
    FAIL("no exception");
  } catch (const DeviceError& e) {
    CHECK(e.code() == ExitCode::device);
    CHECK(static_cast<int>(e.code()) == 6);
  }
}

TEST_CASE("WDLAB_CUBLAS_CHECK throws with cuBLAS's status name") {
  FakeCall<cublasStatus_t> call{CUBLAS_STATUS_NOT_INITIALIZED};
  try {
    WDLAB_CUBLAS_CHECK(call());
    FAIL("no exception");
  } catch (const CallError& e) {
    CHECK(e.library() == Library::cublas);
    CHECK(e.code() == 1);
    CHECK(std::string(e.what()).find(": call() failed: CUBLAS_STATUS_NOT_INITIALIZED (1)") !=
          std::string::npos);
  }
  CHECK(call.calls == 1);
}

TEST_CASE("WDLAB_CUDNN_CHECK throws with cuDNN's status name") {
  FakeCall<cudnnStatus_t> call{CUDNN_STATUS_BAD_PARAM};
  try {
    WDLAB_CUDNN_CHECK(call());
    FAIL("no exception");
  } catch (const CallError& e) {
    CHECK(e.library() == Library::cudnn);
    CHECK(e.code() == 2000);
    CHECK(std::string(e.what()).find(": call() failed: CUDNN_STATUS_BAD_PARAM (2000)") !=
          std::string::npos);
  }
  CHECK(call.calls == 1);
}

TEST_CASE("WDLAB_CUSOLVER_CHECK throws with the cuSOLVER status name") {
  FakeCall<cusolverStatus_t> call{CUSOLVER_STATUS_ZERO_PIVOT};
  try {
    WDLAB_CUSOLVER_CHECK(call());
    FAIL("no exception");
  } catch (const CallError& e) {
    CHECK(e.library() == Library::cusolver);
    CHECK(e.code() == 10);
    CHECK(std::string(e.what()).find(": call() failed: CUSOLVER_STATUS_ZERO_PIVOT (10)") !=
          std::string::npos);
  }
  CHECK(call.calls == 1);
}

TEST_CASE("a successful call passes every macro and is evaluated once") {
  FakeCall<cudaError_t> cuda_ok{cudaSuccess};
  FakeCall<cublasStatus_t> cublas_ok{CUBLAS_STATUS_SUCCESS};
  FakeCall<cudnnStatus_t> cudnn_ok{CUDNN_STATUS_SUCCESS};
  FakeCall<cusolverStatus_t> cusolver_ok{CUSOLVER_STATUS_SUCCESS};
  CHECK_NOTHROW([&] { WDLAB_CUDA_CHECK(cuda_ok()); }());
  CHECK_NOTHROW([&] { WDLAB_CUBLAS_CHECK(cublas_ok()); }());
  CHECK_NOTHROW([&] { WDLAB_CUDNN_CHECK(cudnn_ok()); }());
  CHECK_NOTHROW([&] { WDLAB_CUSOLVER_CHECK(cusolver_ok()); }());
  CHECK(cuda_ok.calls == 1);
  CHECK(cublas_ok.calls == 1);
  CHECK(cudnn_ok.calls == 1);
  CHECK(cusolver_ok.calls == 1);
}

#pragma once
// One family of checked calls (ggml CUDA_CHECK_GEN, tiny-cuda-nn CHECK_THROW): a failed CUDA
// runtime, cuBLAS, cuDNN or cuSOLVER call throws cuda::CallError, a wdlab::DeviceError (exit code
// 6), whose message names file:line, the call as written, and the library's error name and text:
//   cuda/context.cpp:57: cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking) failed:
//   cudaErrorInsufficientDriver (35): CUDA driver version is insufficient for CUDA runtime version
// Nothing here exits. Every library's success value is 0, so the macros compare with 0 and pass
// the status on as an int: this header needs no CUDA header, and the naming happens in check.cpp.
#include <string>

#include "common/errors.hpp"

namespace wdlab::cuda {

/// Whose status code a check carries; selects how the code is named.
enum class Library { cuda_runtime, cublas, cudnn, cusolver };

/// "CUDA runtime", "cuBLAS", "cuDNN", "cuSOLVER".
const char* library_name(Library library) noexcept;

/// "name (code): text"; "name (code)" when text is empty. Null pointers read as "unknown".
/// Pure, so the format is tested on machines without a GPU.
std::string describe_cuda_error(int code, const char* name, const char* text);

/// The library's own name and text for `code`, e.g. for (cublas, 7)
/// "CUBLAS_STATUS_INVALID_VALUE (7): an unsupported value or parameter was passed to the function".
/// Asks the library (cuSOLVER has no such call: a table); needs no GPU.
std::string describe_status(Library library, int code);

/// "file:line: expression failed: description".
std::string format_call_failure(const char* file, int line, const char* expression,
                                const std::string& description);

/// A checked call failed. library() and code() let a caller react to one status (tests do).
class CallError : public DeviceError {
 public:
  CallError(Library library, int code, const std::string& what)
      : DeviceError(what), library_(library), code_(code) {}
  Library library() const noexcept { return library_; }
  int code() const noexcept { return code_; }

 private:
  Library library_;
  int code_;
};

/// Builds the message (for cuDNN with cudnnGetLastErrorString's detail) and throws CallError.
[[noreturn]] void throw_call_error(Library library, int code, const char* expression,
                                   const char* file, int line);

}  // namespace wdlab::cuda

// Evaluates the call once. Variadic so calls whose arguments contain commas in template
// arguments stay one macro argument. The macro does not check that the status type belongs to
// the named library: use the macro that matches the call.
#define WDLAB_DETAIL_CHECK_CALL(library, expression_text, ...)                                   \
  do {                                                                                           \
    const int wdlab_status_ = static_cast<int>(__VA_ARGS__);                                    \
    if (wdlab_status_ != 0)                                                                      \
      ::wdlab::cuda::throw_call_error(library, wdlab_status_, expression_text, __FILE__,         \
                                      __LINE__);                                                 \
  } while (0)

#define WDLAB_CUDA_CHECK(...) \
  WDLAB_DETAIL_CHECK_CALL(::wdlab::cuda::Library::cuda_runtime, #__VA_ARGS__, __VA_ARGS__)
#define WDLAB_CUBLAS_CHECK(...) \
  WDLAB_DETAIL_CHECK_CALL(::wdlab::cuda::Library::cublas, #__VA_ARGS__, __VA_ARGS__)
#define WDLAB_CUDNN_CHECK(...) \
  WDLAB_DETAIL_CHECK_CALL(::wdlab::cuda::Library::cudnn, #__VA_ARGS__, __VA_ARGS__)
#define WDLAB_CUSOLVER_CHECK(...) \
  WDLAB_DETAIL_CHECK_CALL(::wdlab::cuda::Library::cusolver, #__VA_ARGS__, __VA_ARGS__)

/// After a kernel launch: a bad configuration or missing kernel image shows up here, not at the
/// next unrelated call. (Faults inside the kernel show up at the next synchronizing call.)
#define WDLAB_CUDA_CHECK_LAUNCH() WDLAB_CUDA_CHECK(cudaGetLastError())

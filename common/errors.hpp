#pragma once
// Typed errors for all of wdlab. Library code throws; only main() catches, prints one line and
// returns the exit code carried by the error (documented in README.md, "Exit codes").
#include <stdexcept>
#include <string>

namespace wdlab {

enum class ExitCode : int {
  ok = 0,
  check_failed = 1,   // a theory check or crosscheck did not have its expected outcome
  usage = 2,          // bad command line, bad option value, bad config key or value
  data = 3,           // a data, checkpoint or config file is unreadable or malformed
  numeric = 4,        // non-finite values or divergence under --on-nonfinite abort
  precondition = 5,   // an identity's assumptions do not hold for the given network/data
  device = 6,         // CUDA requested but unusable, or a CUDA call failed
  internal = 70,      // a bug: an invariant of wdlab itself was broken
};

class Error : public std::runtime_error {
 public:
  Error(ExitCode code, const std::string& what) : std::runtime_error(what), code_(code) {}
  ExitCode code() const noexcept { return code_; }

 private:
  ExitCode code_;
};

/// Bad option or config value; `field` is the option or key at fault.
struct UsageError : Error {
  UsageError(const std::string& field, const std::string& problem)
      : Error(ExitCode::usage, field + ": " + problem) {}
};

/// Malformed or unreadable file; names the file and, where known, the byte offset or field.
struct DataError : Error {
  DataError(const std::string& file, const std::string& problem)
      : Error(ExitCode::data, file + ": " + problem) {}
};

/// The assumptions of a statement (no biases, whitened inputs, away from ReLU kinks) are violated.
struct PreconditionError : Error {
  explicit PreconditionError(const std::string& what) : Error(ExitCode::precondition, what) {}
};

struct NumericError : Error {
  explicit NumericError(const std::string& what) : Error(ExitCode::numeric, what) {}
};

/// A non-finite value found in a named quantity (loss | gradient | kfac_factor | kfac_inverse |
/// update) of a named layer, so the trainer can record where it happened.
struct NonFiniteError : NumericError {
  NonFiniteError(std::string tensor_, std::string layer_, const std::string& what)
      : NumericError(what), tensor(std::move(tensor_)), layer(std::move(layer_)) {}
  std::string tensor, layer;
};

struct DeviceError : Error {
  explicit DeviceError(const std::string& what) : Error(ExitCode::device, what) {}
};

struct InternalError : Error {
  explicit InternalError(const std::string& what) : Error(ExitCode::internal, what) {}
};

}  // namespace wdlab

/// Throws wdlab::InternalError with file:line and the failing expression.
#define WDLAB_CHECK(cond, msg)                                                                  \
  do {                                                                                          \
    if (!(cond))                                                                                \
      throw ::wdlab::InternalError(std::string(__FILE__) + ":" + std::to_string(__LINE__) +     \
                                   ": check failed: " #cond ": " + std::string(msg));          \
  } while (0)

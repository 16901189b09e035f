#pragma once
// The backend of `wdlab bench` as a parameter: a factory makes the train::Backend to time and the
// timer that measures its steps (steady_clock for the reference; CUDA events on the backend's
// stream for cuda). Only the factory knows the concrete backend.
#include <memory>
#include <string>

#include "apps/math_mode.hpp"
#include "common/errors.hpp"
#include "common/network_spec.hpp"
#include "common/train/backend.hpp"
#include "common/optim/optim_config.hpp"

namespace wdlab::app {

/// Times one step: start() before train_step, stop() after it returns; seconds.
class StepTimer {
 public:
  virtual ~StepTimer() = default;
  virtual std::string name() const = 0;
  virtual void start() = 0;
  virtual double stop() = 0;
};

enum class BenchPrecision { float32, float64 };

struct BenchBackend {
  std::unique_ptr<train::Backend> backend;
  std::unique_ptr<StepTimer> timer;
  std::string precision;  // "float" | "double"
};

/// The backend cannot be used here (not built, no GPU, cannot train yet): one line, exit 2.
struct BackendUnavailable : Error {
  explicit BackendUnavailable(const std::string& what) : Error(ExitCode::usage, what) {}
};

std::unique_ptr<StepTimer> make_host_timer();
/// CUDA events recorded on `stream` (a cudaStream_t; CUDA builds only).
std::unique_ptr<StepTimer> make_cuda_event_timer(void* stream);

BenchBackend make_reference_bench_backend(const NetworkSpec& spec, const optim::OptimConfig& optim,
                                          BenchPrecision precision, std::uint64_t seed);
/// Throws BackendUnavailable with the reason (not built / no usable GPU / cannot train yet).
/// Call once before any timing to fail at start.
void check_cuda_bench_backend();
BenchBackend make_cuda_bench_backend(const NetworkSpec& spec, const optim::OptimConfig& optim, MathMode math,
                                     std::uint64_t seed);

}  // namespace wdlab::app

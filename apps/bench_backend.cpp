#include "apps/bench_backend.hpp"

#include <chrono>

#include "reference/backend.hpp"

namespace wdlab::app {


namespace {

class HostTimer final : public StepTimer {
 public:
  std::string name() const override { return "steady_clock"; }
  void start() override { t0_ = std::chrono::steady_clock::now(); }
  double stop() override { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count(); }

 private:
  std::chrono::steady_clock::time_point t0_;
};

}  // namespace

std::unique_ptr<StepTimer> make_host_timer() { return std::make_unique<HostTimer>(); }

BenchBackend make_reference_bench_backend(const NetworkSpec& spec, const optim::OptimConfig& optim,
                                          BenchPrecision precision, std::uint64_t seed) {
  BenchBackend b;
  b.timer = make_host_timer();
  if (precision == BenchPrecision::float64) {
    b.backend = std::make_unique<ref::ReferenceBackend<double>>(
        spec, ref::init_params<double>(spec, seed, ref::Init::glorot_uniform), optim, seed);
    b.precision = "double";
  } else {
    b.backend = std::make_unique<ref::ReferenceBackend<float>>(
        spec, ref::init_params<float>(spec, seed, ref::Init::glorot_uniform), optim, seed);
    b.precision = "float";
  }
  return b;
}

#if !defined(WDLAB_HAVE_CUDA)
void check_cuda_bench_backend() {
  throw BackendUnavailable("--backend cuda: the CUDA backend is not built (no CUDA compiler found, or -DWDLAB_CUDA=OFF)");
}
BenchBackend make_cuda_bench_backend(const NetworkSpec&, const optim::OptimConfig&, MathMode, std::uint64_t) {
  check_cuda_bench_backend();
  return {};
}
#endif

}  // namespace wdlab::app

// `wdlab bench --backend cuda` (CUDA builds only): the refusal at start where no GPU is usable,
// the CudaBackend (apps/cuda_setup.hpp) and the CUDA-event step timer. Steps are timed by events
// recorded on the backend's stream around train_step (which reads one scalar back, so the step
// has finished when it returns; a K-FAC step reads back once more, before stepping). An optimizer
// the backend refuses throws UsageError at construction; bench reports that row as not run.
#include <cuda_runtime_api.h>

#include <fmt/format.h>

#include "apps/bench_backend.hpp"
#include "apps/cuda_setup.hpp"
#include "cuda/backend.hpp"
#include "cuda/check.hpp"
#include "cuda/device_query.hpp"

namespace wdlab::app {

namespace {

class CudaEventTimer final : public StepTimer {
 public:
  explicit CudaEventTimer(cudaStream_t stream) : stream_(stream) {
    WDLAB_CUDA_CHECK(cudaEventCreate(&start_));
    WDLAB_CUDA_CHECK(cudaEventCreate(&stop_));
  }
  ~CudaEventTimer() override {
    cudaEventDestroy(start_);
    cudaEventDestroy(stop_);
  }
  CudaEventTimer(const CudaEventTimer&) = delete;
  CudaEventTimer& operator=(const CudaEventTimer&) = delete;
  std::string name() const override { return "cuda_events"; }
  void start() override { WDLAB_CUDA_CHECK(cudaEventRecord(start_, stream_)); }
  double stop() override {
    WDLAB_CUDA_CHECK(cudaEventRecord(stop_, stream_));
    WDLAB_CUDA_CHECK(cudaEventSynchronize(stop_));
    float ms = 0;
    WDLAB_CUDA_CHECK(cudaEventElapsedTime(&ms, start_, stop_));
    return double(ms) * 1e-3;
  }

 private:
  cudaStream_t stream_;
  cudaEvent_t start_{}, stop_{};
};

}  // namespace

std::unique_ptr<StepTimer> make_cuda_event_timer(void* stream) {
  return std::make_unique<CudaEventTimer>(static_cast<cudaStream_t>(stream));
}

void check_cuda_bench_backend() {
  const auto st = cuda::query_devices();
  if (!st.usable) throw BackendUnavailable("--backend cuda: " + st.reason);
}

BenchBackend make_cuda_bench_backend(const NetworkSpec& spec, const optim::OptimConfig& optim, MathMode math,
                                     std::uint64_t seed) {
  check_cuda_bench_backend();
  auto be = make_cuda_backend(spec, optim, seed, ref::Init::glorot_uniform,
                              cuda::BackendOptions{.math = math == MathMode::tf32 ? cuda::MathMode::tf32
                                                                                  : cuda::MathMode::fp32});
  BenchBackend b;
  b.timer = make_cuda_event_timer(be->stream());
  b.backend = std::move(be);
  b.precision = "float";
  return b;
}

}  // namespace wdlab::app

#include "apps/cuda_setup.hpp"

#include <fmt/format.h>

#include "common/errors.hpp"
#include "reference/net/params.hpp"
#include "common/optim/optim_config.hpp"

#if defined(WDLAB_HAVE_CUDA)
#include "cuda/device_query.hpp"
#endif

namespace wdlab::app {

void check_backend_usable(const ExperimentConfig& c) {
  if (c.backend != BackendKind::cuda) return;
#if defined(WDLAB_HAVE_CUDA)
  if (c.precision == Precision::float64)
    throw UsageError("precision", "the cuda backend computes in float32; use --precision float");
  const cuda::DeviceStatus st = cuda::query_devices();
  if (!st.usable) throw UsageError("backend", st.reason);
#else
  throw UsageError("backend", "this wdlab was built without the CUDA backend (nvcc or cuDNN not "
                              "found at configure time, or WDLAB_CUDA=OFF)");
#endif
}

BackendKind backend_option(const std::string& name) {
  if (name == "reference") return BackendKind::reference;
  if (name != "cuda") throw UsageError("--backend", fmt::format("expected reference or cuda, got '{}'", name));
  ExperimentConfig c;  // float32 and SGD: only the build and the device are in question here
  c.backend = BackendKind::cuda;
  check_backend_usable(c);
  return BackendKind::cuda;
}

void use_backend(ExperimentConfig& c, BackendKind kind) {
  c.backend = kind;
  if (kind != BackendKind::cuda) return;
  c.precision = Precision::float32;
  check_backend_usable(c);
}

train::DeviceMemoryPlan device_memory_plan(const ExperimentConfig& c, const NetworkSpec& spec,
                                           std::int64_t resident_examples) {
  train::DeviceMemoryInput in;
  in.train_batch = c.batch_size;
  in.eval_batch = c.eval_batch_size;
  in.optimizer = c.optim.kind;
  in.snapshot = c.on_nonfinite == train::NonfinitePolicy::skip;
  in.resident_examples = resident_examples;
  return train::plan_device_memory(spec, in);
}

void check_device_memory(const ExperimentConfig& c, const NetworkSpec& spec, std::int64_t resident_examples) {
  if (c.backend != BackendKind::cuda) return;
#if defined(WDLAB_HAVE_CUDA)
  const cuda::DeviceStatus st = cuda::query_devices();
  if (st.devices.empty()) return;  // check_backend_usable has refused already
  const auto plan = device_memory_plan(c, spec, resident_examples);
  const std::int64_t reserve = std::int64_t(1) << 30;
  const std::int64_t have = std::int64_t(st.devices.front().total_memory_bytes) - reserve;
  if (plan.total() > have)
    throw UsageError("batch_size",
                     fmt::format("the run needs {:.2f} GiB of device memory, device 0 has {:.2f} GiB (total less 1 GiB); "
                                 "lower batch_size or eval_batch_size. The plan:\n{}",
                                 double(plan.total()) / (1 << 30), double(have) / (1 << 30), plan.describe()));
#else
  static_cast<void>(spec);
  static_cast<void>(resident_examples);
#endif
}

#if defined(WDLAB_HAVE_CUDA)

std::unique_ptr<cuda::CudaBackend> make_cuda_backend(const NetworkSpec& spec,
                                                     const optim::OptimConfig& config,
                                                     std::uint64_t seed, ref::Init init,
                                                     cuda::BackendOptions options) {
  config.validate();
  const ref::ParamStore<float> p = ref::init_params<float>(spec, seed, init);
  std::vector<std::vector<float>> values;
  for (std::size_t i = 0; i < p.info.size(); ++i) values.push_back(ref::to_pytorch_order(p.info[i], p.values[i]));
  // K-FAC's sampled cotangents: the reference backend's seed.
  return std::make_unique<cuda::CudaBackend>(spec, values, config, optim::decay_flags(spec, config.reg), seed,
                                             options);
}

#endif

std::unique_ptr<train::Backend> make_cuda_backend(const ExperimentConfig& c, const NetworkSpec& spec) {
  check_backend_usable(c);
#if defined(WDLAB_HAVE_CUDA)
  return make_cuda_backend(spec, c.optim, c.seed, c.init,
                           cuda::BackendOptions{.math = c.math == MathMode::tf32 ? cuda::MathMode::tf32 : cuda::MathMode::fp32});
#else
  (void)spec;
  throw InternalError("make_cuda_backend: check_backend_usable passed in a build without CUDA");
#endif
}

}  // namespace wdlab::app

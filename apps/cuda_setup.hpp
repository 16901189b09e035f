#pragma once
// `--backend cuda`: the check at start and the construction of cuda::CudaBackend from an
// experiment config. The apps are where reference and cuda meet (DESIGN.md): the common
// OptimConfig and its decay_flags() decide which tensors are regularized, the reference's init_params gives
// the starting point, so both backends train the same model from the same numbers.
// Compiled in every build; without the CUDA backend the functions refuse with a reason.
#include <cstdint>
#include <memory>
#include <string>

#include "apps/experiment_config.hpp"
#include "common/network_spec.hpp"
#include "common/train/backend.hpp"
#include "common/train/device_memory_plan.hpp"

#if defined(WDLAB_HAVE_CUDA)
#include "cuda/backend.hpp"
#endif

namespace wdlab::app {

/// For c.backend == cuda, throws UsageError("backend", one-line reason) when this build has no
/// CUDA backend or no GPU is usable here (e.g. "no usable CUDA device: cudaErrorInsufficientDriver
/// (35): ..."), and UsageError for what the cuda backend does not do (double precision, K-FAC).
/// Exit code 2 through main. Does nothing for the reference backend. Cheap: call it at start.
void check_backend_usable(const ExperimentConfig& c);

/// The `--backend reference|cuda` option of eval and measure (UsageError("--backend") for
/// another name). For cuda it checks at once that a GPU is usable, so that the refusal is the
/// one-line reason with exit 2 before any file is read.
BackendKind backend_option(const std::string& name);

/// A run's config switched to `kind` for eval/measure: for cuda, float32 (a double checkpoint is
/// then refused by load_state, naming its precision) and check_backend_usable (K-FAC, device).
void use_backend(ExperimentConfig& c, BackendKind kind);

/// The cuda backend's device memory for this config (train and eval batch sizes, optimizer,
/// --on-nonfinite skip) and `resident_examples` images on the device; host arithmetic only.
train::DeviceMemoryPlan device_memory_plan(const ExperimentConfig& c, const NetworkSpec& spec,
                                           std::int64_t resident_examples);

/// For c.backend == cuda: UsageError("batch_size", the plan and what the device has) when the
/// plan exceeds device 0's memory less 1 GiB (CUDA context, cuBLAS/cuDNN handles). Call it once
/// the data are loaded, before the backend is built, so the run fails at once and in one line
/// rather than with cudaErrorMemoryAllocation after the first epochs.
void check_device_memory(const ExperimentConfig& c, const NetworkSpec& spec, std::int64_t resident_examples);

/// check_backend_usable, then a CudaBackend with the config's network, optimizer and seed.
std::unique_ptr<train::Backend> make_cuda_backend(const ExperimentConfig& c, const NetworkSpec& spec);

#if defined(WDLAB_HAVE_CUDA)
/// A CudaBackend from ref::init_params<float>(spec, seed, init), in PyTorch order (for bench and
/// crosscheck, which build their own specs), with the common config, its decay_flags and `seed`.
/// Validates the config and its scope. Throws DeviceError without a usable GPU.
std::unique_ptr<cuda::CudaBackend> make_cuda_backend(const NetworkSpec& spec,
                                                     const optim::OptimConfig& config,
                                                     std::uint64_t seed, ref::Init init,
                                                     cuda::BackendOptions options = {});
#endif

}  // namespace wdlab::app

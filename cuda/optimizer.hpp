#pragma once
// The CUDA backend's optimizers, one class per update rule as ref::Optimizer
// (reference/optim/optimizer.hpp): CudaSgd (optim_sgd.hpp), CudaAdam (optim_adam.hpp) and
// CudaKfac (kfac.hpp), built by make_cuda_optimizer (optimizer.cpp: one switch over the kinds
// without default, so a new kind that is not built there fails to compile, -Wswitch -Werror).
//
// Two step paths, as the backend runs them (backend.cpp, backend_kfac.cpp):
//   first-order (CudaFirstOrder): an elementwise update per trainable tensor, queued on the
//     stream without a read-back; a device flag (the step's non-finite loss) turns it off;
//   K-FAC (CudaKfac): the loss is read back first, then the preconditioned step and the
//     statistics passes.
// Every optimizer writes and reads its own checkpoint entries ("optim." names, PyTorch layout:
// common/train/optim_layout.hpp), staged on the host first so a bad file changes nothing.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/io/safetensors.hpp"
#include "common/network_spec.hpp"
#include "cuda/context.hpp"
#include "cuda/device_buffer.hpp"
#include "cuda/kernels/optim.hpp"
#include "cuda/kfac_policy.hpp"
#include "common/optim/optim_config.hpp"

namespace wdlab::cuda {

class CudaKfac;
class CudaFirstOrder;

/// One device buffer per entry of spec.params(), PyTorch order (empty where a rule keeps none).
using DeviceTensors = std::vector<DeviceBuffer<float>>;

class CudaOptimizer {
 public:
  virtual ~CudaOptimizer() = default;
  CudaOptimizer(const CudaOptimizer&) = delete;
  CudaOptimizer& operator=(const CudaOptimizer&) = delete;

  virtual OptimizerKind kind() const = 0;

  /// Checkpoint entries under the reference's names and layouts.
  virtual void write_state(io::SafetensorsFile& f) const = 0;
  /// Everything a load needs, read and checked on the host; adds the number of entries taken to
  /// *taken (the backend refuses a file with others: another optimizer's checkpoint). Changes
  /// nothing; DataError naming the entry when one is missing or malformed.
  struct Staged {
    virtual ~Staged() = default;
  };
  virtual std::shared_ptr<const Staged> stage_state(const io::SafetensorsFile& f, std::size_t* taken) const = 0;
  /// Commits what stage_state of this optimizer read.
  virtual void commit_state(const Staged& s) = 0;

  /// The step path: exactly one of these is non-null.
  virtual CudaFirstOrder* first_order() { return nullptr; }
  virtual CudaKfac* kfac() { return nullptr; }

 protected:
  CudaOptimizer() = default;
};

/// A first-order rule: per trainable tensor i an elementwise update body (kernels/optim.hpp)
/// over θ_i, g_i and the rule's per-parameter state buffers, each shaped like θ_i, zero at start
/// and written to checkpoints as "<prefix><parameter name>"; optionally a step counter t (from 1
/// at the first step) written as a 0-d entry. A derived class names its state and launches its
/// body in update().
class CudaFirstOrder : public CudaOptimizer {
 public:
  /// Every trainable tensor's update, queued on the stream; the bodies do nothing while *skip
  /// is set (a non-finite loss). grads are those of the step (not modified).
  void step(DeviceTensors& params, const DeviceTensors& grads, double lr, const std::uint32_t* skip);
  /// The device flag turned the last step off: the step counter goes back.
  void step_skipped();
  /// The skip policy: a device copy of the state before a step, and back to it.
  void snapshot();
  void restore();

  void write_state(io::SafetensorsFile& f) const final;
  std::shared_ptr<const Staged> stage_state(const io::SafetensorsFile& f, std::size_t* taken) const final;
  void commit_state(const Staged& s) final;
  CudaFirstOrder* first_order() final { return this; }

 protected:
  /// `state_prefixes`: one per state buffer ("optim.momentum."); `step_count`: the counter's
  /// entry name ("optim.adam.t"), empty for a rule without one.
  /// `decays`: per entry of spec.params(), whether config.reg regularizes it (optim::decay_flags).
  CudaFirstOrder(Context& ctx, const NetworkSpec& spec, const OptimConfig& config, std::vector<char> decays,
                 std::vector<std::string> state_prefixes, std::string step_count = {});
  /// Queue tensor i's update (n elements) on stream(); t() is this step's counter.
  virtual void update(std::size_t i, kernels::Index n, float* theta, const float* grad, kernels::Decay decay,
                      float lr, const std::uint32_t* skip) = 0;
  /// State buffer `slot` (order of the prefixes) of tensor i.
  float* state(std::size_t slot, std::size_t i) { return state_[slot][i].data(); }
  std::int64_t t() const { return t_; }
  const OptimConfig& settings() const { return settings_; }
  cudaStream_t stream() const { return ctx_.stream(); }

 private:
  struct StagedState;
  /// Tensor i's regularization: none where it does not decay (decays_).
  kernels::Decay decay(std::size_t i) const;

  Context& ctx_;
  std::vector<ParamInfo> info_;
  OptimConfig settings_;
  std::vector<char> decays_;
  std::vector<std::string> prefixes_;
  std::string step_count_;
  std::vector<DeviceTensors> state_, before_;  // per slot, per tensor (before_: the snapshot)
  std::int64_t t_ = 0, t_before_ = 0;
};

/// K-FAC's statistics for kind (kfac_f: Fisher, kfac_g: Gauss-Newton); InternalError for a kind
/// that is not K-FAC. Beside make_cuda_optimizer: the two switches over every kind.
KfacStatistics kfac_statistics_of(OptimizerKind kind);

/// The optimizer `config.kind` for `spec` (config validated by the caller); `decays` as
/// optim::decay_flags gives them, `seed` of K-FAC's sampled cotangents.
std::unique_ptr<CudaOptimizer> make_cuda_optimizer(Context& ctx, const NetworkSpec& spec, const OptimConfig& config,
                                                   const std::vector<char>& decays, std::uint64_t seed);

}  // namespace wdlab::cuda

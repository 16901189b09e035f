#pragma once
// CudaBackend: the trainer's Backend (common/train/backend.hpp) on one GPU, float32.
//   dense: cuBLAS sgemm; conv2d: cuDNN (cuda/conv.hpp); BN, ReLU, pooling, residual, bias,
//   losses, optimizer updates: our kernel bodies (cuda/kernels/), which the CPU tests check
//   against the reference; BN and pooling are ours rather than cuDNN's so their semantics
//   (TF's ε and momentum, unbiased running variance, first-maximum ties, NaN propagation) are the
//   reference's by construction and tested without a GPU.
// Parameters live on the device in PyTorch order (checkpoints interchangeable with the
// reference, cuda/state_layout.hpp). One stream; one host read-back per step (loss, hits, the
// non-finite count of the updated parameters). A non-finite loss sets a device flag on which the
// optimizer and running-statistics kernels do nothing, as the reference returns before stepping.
// Data resident on the device (DataPath::resident, backend_data.cpp): the trainer uploads each
// data set once; a step then sends only its example ids (pinned, asynchronous) and one kernel
// gathers and augments the input (kernels/gather.hpp, the host path's Philox draws) and one the
// labels. Host batches (train_step, evaluate) are still taken, with one copy per call.
// The optimizer is one of cuda/optimizer.hpp's classes (make_cuda_optimizer): a first-order rule
// (SGD, Adam: an elementwise update queued in the step) or K-FAC-F/G (cuda/kfac.hpp,
// backend_kfac.cpp: a K-FAC step reads the loss back before stepping, as the reference returns
// before the optimizer on a non-finite loss, then once more at the end).
// The crosscheck's entry points (one pass with every buffer downloaded) are a friend,
// cuda::Capturer (cuda/capturer.hpp), not members.
#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/network_spec.hpp"
#include "common/train/backend.hpp"
#include "cuda/context.hpp"
#include "cuda/conv.hpp"
#include "cuda/device_buffer.hpp"
#include "common/optim/optim_config.hpp"
#include "cuda/kernels/loss.hpp"
#include "cuda/optimizer.hpp"
#include "cuda/staging_buffer.hpp"

namespace wdlab::cuda {

// The optimizer description is common (common/optim/); the CUDA backend names it unqualified.
using optim::MomentumKind;
using optim::OptimConfig;
using optim::OptimizerKind;
using optim::Regularization;

class CudaKfac;
class Capturer;

struct BackendOptions {
  int device = 0;
  MathMode math = MathMode::fp32;
  AlgoPolicy policy = AlgoPolicy::fastest;  // deterministic for crosschecks
};

class CudaBackend final : public train::Backend {
 public:
  /// `params`: one vector per entry of spec.params(), PyTorch order (e.g. from the reference's
  /// init_params + to_pytorch_order, so both backends start from the same numbers).
  /// `optim`: the common optimizer config; `decays`: per entry of spec.params(), whether
  /// optim.reg regularizes it (optim::decay_flags, so both backends decay the same tensors);
  /// `seed`: K-FAC's sampled cotangents (the reference backend's seed).
  /// Throws DeviceError (no usable GPU) or UsageError (a bad setting).
  CudaBackend(NetworkSpec spec, const std::vector<std::vector<float>>& params, optim::OptimConfig optim,
              std::vector<char> decays, std::uint64_t seed, BackendOptions options = {});
  ~CudaBackend() override;

  std::string describe() const override;
  train::StepStats train_step(const train::HostBatch& batch, double lr,
                              std::int64_t iteration) override;
  train::EvalStats evaluate(const train::HostBatch& batch) override;
  /// backend_data.cpp: the data sets on the device, batches by example id.
  train::DataPath data_path() const override { return train::DataPath::resident; }
  void set_resident_data(train::DataSplit split, const train::DataView& data) override;
  train::StepStats train_step_ids(const train::IdBatch& batch, double lr, std::int64_t iteration) override;
  void accumulate_factor_init_ids(const train::IdBatch& batch, std::int64_t index) override;
  train::EvalStats evaluate_ids(const train::IdBatch& batch) override;
  std::vector<std::pair<std::string, double>> weight_norms() const override;
  /// Under skip a step whose update is non-finite is undone from a device copy of the
  /// parameters and optimizer state taken before it (kept only under skip).
  void set_nonfinite_policy(train::NonfinitePolicy policy) override { policy_ = policy; }
  /// backend_measure.cpp: the numbers behind the mechanism metrics on the GPU, term for term as
  /// reference/backend_measure.cpp (norms, jacobian, jacobian_est, gn, trace; damping fractions
  /// through the optimizer); common/train/measure.cpp names the rows.
  train::MeasureSummary measure_summary(const train::HostBatch& probe, const train::MeasureRequest& req) override;
  /// Group rotation: steps record ⟨θ_t,θ_{t+1}⟩, the norms and ‖g_t‖ per weight tensor (one device
  /// copy of the weights and four reductions per tensor per step; backend_measure.cpp).
  void record_weight_steps(train::WeightSteps mode) override { weight_steps_ = mode; }
  /// wn-conv on the device (Backend::rescale_weights), all or nothing.
  void rescale_weights(const train::NamedValues& targets) override;
  /// K-FAC's data-pass factor initialization (backend_kfac.cpp).
  bool wants_factor_init() const override;
  void accumulate_factor_init(const train::HostBatch& batch, std::int64_t index) override;
  void finish_factor_init() override;
  /// The K-FAC optimizer (null for first-order rules): factors, inverses, damping metrics.
  const CudaKfac* kfac() const { return kfac_; }
  io::SafetensorsFile state() const override;
  void load_state(const io::SafetensorsFile& file) override;

  /// The cuDNN algorithm choices so far, one line each (crosscheck reports print them).
  std::vector<std::string> algorithm_choices() const { return conv_.cache.describe(); }
  /// Parameters in PyTorch order (tests compare them with the reference).
  std::vector<std::vector<float>> parameters() const;
  /// The one stream all work is queued on (bench times steps with CUDA events on it).
  cudaStream_t stream() const { return ctx_->stream(); }
 private:
  friend class Capturer;  // the crosscheck's passes (cuda/capturer.hpp)
  struct Activations;  // one batch size's layer outputs, cotangents, BN statistics, scratch
  /// train: everything a training pass, a capture or a metric's backward needs; eval: the
  /// forward only (no cotangents, x̂, BN batch statistics). One set per use: a new batch size
  /// frees the old set of that use first, so memory is one training and one evaluation set
  /// whatever sizes a run sees (common/train/device_memory_plan.hpp counts exactly these).
  enum class ActivationUse { train, eval };
  Activations& activations(int N, ActivationUse use = ActivationUse::train);
  void upload(Activations& a, const train::HostBatch& batch);
  void gather(Activations& a, const train::IdBatch& batch);  // backend_data.cpp
  /// The step (eval) on the batch already in a.input/a.labels; ends with the one read-back.
  train::StepStats run_step(Activations& a, double lr);
  train::EvalStats run_eval(Activations& a);
  void forward(Activations& a, bool train);
  void loss_and_gradient(Activations& a, bool want_gradient);
  /// Which statistics BN's backward differentiates through: the batch's (train mode) or the
  /// running ones, constants (eval mode: the curvature metrics).
  enum class BnPass { batch, running };
  void backward(Activations& a, BnPass bn = BnPass::batch);
  void optimizer_step(double lr);
  void running_stats_update(Activations& a);
  void parameter_stats();
  // Non-finite steps (backend.cpp): the skip policy's device copy, and which tensor to report.
  void snapshot_state();
  void restore_state();
  void name_nonfinite(train::StepStats& s) const;
  // backend_measure.cpp
  struct Curvature;  // one output pass's per-layer factor traces and scalars
  /// BN of an output pass: the running statistics, or (batch) the statistics of the forward
  /// pass in `a` (forward(a, true)) with per-example signs on the cotangents (measure.hpp).
  struct CurvatureBnPass {
    train::CurvatureBn mode = train::CurvatureBn::eval;
    std::uint64_t seed = 0, step = 0;
  };
  /// The output metric whose columns B_n the pass back-propagates (Gauss-Newton: e_j; Fisher:
  /// √p_j(e_j − p)), whether it also sums ‖J_x‖²_F (the input gradient of each pass), and whether
  /// it forms the K-FAC quadratic T·vec(W̄)ᵀ(A⊗S)vec(W̄) (C×C Gram matrices): named, not bools.
  enum class OutputMetric { gauss_newton, fisher };
  enum class InputJacobian { compute, skip };
  enum class KfacQuadratic { compute, skip };
  Curvature output_pass(Activations& a, OutputMetric metric, InputJacobian jac, KfacQuadratic gn,
                        const CurvatureBnPass& bn);
  std::vector<double> jacobian_estimates(Activations& a, const train::MeasureRequest& req);
  /// Group rotation, around the optimizer step of run_step / kfac_step (after the backward, so
  /// ‖g_t‖ is the loss gradient before L2): θ_t, ‖θ_t‖², ‖g_t‖²; then ⟨θ_t,θ_{t+1}⟩, ‖θ_{t+1}‖².
  void begin_weight_steps();
  void end_weight_steps(train::StepStats& s);
  kernels::StepScalars read_scalars() const;
  const float* input_of(const Activations& a, int layer, int which = 0) const;
  /// backend_kfac.cpp: a K-FAC step on the batch in `a`, and the statistics pass (a train-mode
  /// forward on that batch, a backward of the sampled cotangents, the factor estimates).
  train::StepStats kfac_step(Activations& a, double lr, std::int64_t iteration);
  void kfac_statistics(Activations& a, std::uint64_t rng_step);
  void kfac_statistics(Activations& a, std::uint64_t rng_step, CudaKfac& kfac);
  /// The data-pass statistics of batch `index` (in `a`), added to the running sum.
  void kfac_init_batch(Activations& a, std::int64_t index);

  NetworkSpec spec_;
  std::vector<ParamInfo> info_;
  optim::OptimConfig optim_;
  std::vector<char> decays_;  // per tensor: regularized by optim_.reg
  std::uint64_t seed_ = 0;     // K-FAC's sampled cotangents
  BackendOptions options_;
  std::unique_ptr<Context> ctx_;
  mutable ConvSettings conv_;
  std::vector<LayerSlots> slots_;             // per layer (common/network_spec.hpp)
  std::vector<DeviceBuffer<float>> params_;   // per tensor, PyTorch order
  std::vector<DeviceBuffer<float>> grads_;    // trainable tensors (empty for running stats)
  DeviceBuffer<kernels::StepScalars> scalars_;
  mutable DeviceBuffer<double> stats_scratch_;  // weight_norms partials
  std::array<std::unique_ptr<Activations>, 2> acts_;  // by ActivationUse
  train::NonfinitePolicy policy_ = train::NonfinitePolicy::abort;
  // Under skip: the parameters (running statistics included) before a first-order step; the
  // optimizer keeps a copy of its own state (CudaFirstOrder::snapshot).
  std::vector<DeviceBuffer<float>> params_before_;
  std::unique_ptr<CudaOptimizer> optimizer_;
  CudaFirstOrder* first_order_ = nullptr;  // optimizer_->first_order(): SGD, Adam
  CudaKfac* kfac_ = nullptr;               // optimizer_->kfac(): K-FAC-F/G
  train::WeightSteps weight_steps_ = train::WeightSteps::off;
  std::vector<DeviceBuffer<float>> step_theta_;  // θ_t per weight tensor (recording only)
  DeviceBuffer<double> step_sums_, step_partial_;  // 4 sums per weight tensor, reduction scratch
  struct ResidentSet {
    DeviceBuffer<float> images;          // n·C·H·W, normalized, not augmented
    DeviceBuffer<std::int32_t> labels;   // n
    std::int64_t n = 0;
  };
  std::array<ResidentSet, 3> resident_;          // by train::DataSplit
  StagingBuffer<std::int64_t> ids_staging_;      // the current batch's ids on the host (waits per upload)
  DeviceBuffer<std::int64_t> ids_;               // and on the device
};

}  // namespace wdlab::cuda

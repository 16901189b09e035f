#pragma once
// CudaKfac: K-FAC-F / K-FAC-G on the device, step for step the reference's Kfac<float>
// (reference/optim/kfac.hpp; MATH.md §9.3–9.5). Per dense/conv block l, factors A_l (a × a, a =
// in + 1 with a bias) and S_l (out × out), column-major float on the device:
//   statistics: Â = X̄X̄ᵀ/M, Ŝ = DDᵀ/M, one cuBLAS syrk each (lower triangle, then mirrored),
//               X̄ the KFC patches (conv, kernels/patches.hpp) or the homogeneous input (dense),
//               D the output cotangent columns, M = N·T;
//   factors:    A ← εA + (1−ε)Â, S ← εS + (1−ε)Ŝ after step k when (k+1) mod T_cov = 0;
//   inverses:   at step k when k mod T_inv = 0 or none exist: π-split damping, then (F + dI)⁻¹
//               by cuSOLVER potrf + potri (cholesky) or syevd (eig), d raised ×10 while F + dI
//               is not numerically positive definite (cuda/kfac_policy.hpp);
//   step:       g ← g + βθ (L2); U = S̃⁻¹ Ḡ Ã⁻¹ / T; ν = KL clip; v ← μv + νU; θ ← θ − η(v + βθ
//               under WD).
// Host decisions read back a few scalars: one synchronization per inverse attempt and one per
// factor update (the non-finite check of the estimates). Not done: the reference's low-rank
// path for dense layers when the batch is small (same U up to rounding, cheaper), batching of
// equal-shaped factors.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/io/safetensors.hpp"
#include "common/network_spec.hpp"
#include "common/train/backend.hpp"
#include "cuda/context.hpp"
#include "cuda/device_buffer.hpp"
#include "cuda/kfac_policy.hpp"
#include "cuda/optimizer.hpp"

namespace wdlab::cuda {

/// One raised damping (a factor that was not numerically positive definite), as the reference's
/// DampingRaise.
struct KfacDampingRaise {
  std::int64_t iteration = 0;
  std::string layer;
  char factor = 'A';
  double requested = 0, used = 0;
  int raises = 0;
};
/// The reference backend's "damping_raised" step event for r.
train::StepEvent damping_event(const KfacDampingRaise& r);

/// A failed K-FAC step: which quantity (kfac_factor | kfac_inverse) of which layer.
struct KfacFailure {
  std::string tensor, layer, detail;
};

class CudaKfac final : public CudaOptimizer {
 public:
  /// Throws InternalError when optim is not a K-FAC kind. `decays`: per entry of spec.params(),
  /// whether optim.reg regularizes it (optim::decay_flags); `seed`: of the sampled cotangents.
  CudaKfac(Context& ctx, const NetworkSpec& spec, const OptimConfig& optim, std::vector<char> decays,
           std::uint64_t seed);
  ~CudaKfac() override;
  OptimizerKind kind() const override { return optim_.kind; }
  CudaKfac* kfac() override { return this; }
  /// Fisher (kfac_f) or Gauss-Newton (kfac_g) statistics.
  KfacStatistics statistics() const { return statistics_; }

  const std::vector<KfacBlockLayout>& blocks() const { return blocks_; }
  const KfacConfig& settings() const { return cfg_; }
  std::uint64_t seed() const { return seed_; }
  bool wants_factors(std::int64_t k) const { return kfac_wants_factors(cfg_, k); }
  bool wants_factor_init() const { return cfg_.factor_init == FactorInit::data_pass && !initialized_; }

  /// One step on params/grads (PyTorch order, one buffer per entry of spec.params(); grads are
  /// scratch: L2 is added in place). The loss is known finite. Returns the damping raises of
  /// this step; a factor or inverse that is not finite (or stays indefinite) is returned in
  /// `failure` and nothing is updated.
  std::vector<KfacDampingRaise> step(std::vector<DeviceBuffer<float>>& params,
                                     std::vector<DeviceBuffer<float>>& grads, double lr,
                                     std::int64_t k, KfacFailure* failure);

  /// The statistics of one batch: per block, the layer's input x (NCHW / in×N) and the
  /// cotangent dy at its output from the sampled backward pass, N examples.
  struct BlockInput {
    const float* x = nullptr;
    const float* dy = nullptr;
  };
  void estimate(const std::vector<BlockInput>& in, int N);
  /// Folds the last estimates into the factors (after step k). Returns false (factors unchanged,
  /// `failure` set) when an estimate has a non-finite entry.
  bool update_factors(std::int64_t k, KfacFailure* failure);
  /// Data-pass initialization: sum the last estimates; finish: A ← mean, inverses stale.
  void accumulate_init();
  void finish_init();

  /// Checkpoint entries under the reference's names and layouts (kfac_policy.hpp): factors,
  /// inverses, damping, momentum, flags.
  void write_state(io::SafetensorsFile& f) const override;
  std::shared_ptr<const Staged> stage_state(const io::SafetensorsFile& f, std::size_t* taken) const override;
  void commit_state(const Staged& s) override;

  /// The 'damping' metric group's numbers, blocks in layer order (the rows damping_eff.<w> =
  /// λ‖θ_l‖² and damping_frac.<w> are named by train::metric_rows): per block the fraction of
  /// Kronecker eigenvalue pairs with T·aᵢ·sⱼ > λ.
  std::vector<train::DampingSummary> damping_summary(const std::vector<ParamInfo>& info) const;

  /// Crosscheck (Capturer::capture_kfac): the last estimates become the factors as they are
  /// (no moving average), then the damped inverses as a step computes them and U = S̃⁻¹ Ḡ Ã⁻¹ / T
  /// of `grads` (no L2, no KL clip, nothing stepped; download_update reads U). False, with
  /// `failure` set, when a factor is not finite or stays indefinite.
  bool precondition_estimates(const std::vector<DeviceBuffer<float>>& grads,
                              std::vector<KfacDampingRaise>* raises, KfacFailure* failure);
  /// Host copy of the last preconditioned direction of tensor i (PyTorch order), a block's
  /// weight or bias.
  std::vector<float> download_update(int tensor) const;
  /// Host copies (tests): factor 'A'/'S' or inverse 'a'/'s' of block b, column-major.
  std::vector<float> download(int b, char which) const;
  SplitDamping damping(int b) const { return blocks_state_[std::size_t(b)].damping; }

 private:
  struct StagedState;
  struct BlockState {
    DeviceBuffer<float> A, S, A_inv, S_inv, est_A, est_S, init_A, init_S;
    SplitDamping damping;
  };
  /// U = S̃⁻¹ Ḡ Ã⁻¹ / T of every block into u_, from the current inverses.
  void precondition(const std::vector<DeviceBuffer<float>>& grads);
  void compute_inverses(std::int64_t k, std::vector<KfacDampingRaise>& raises, KfacFailure* failure);
  /// (F + dI)⁻¹ into out with the retry policy; false when it stays indefinite.
  bool damped_inverse(const DeviceBuffer<float>& F, int n, double trace, double requested,
                      DeviceBuffer<float>& out, double* used, int* raises);
  bool try_inverse(const DeviceBuffer<float>& F, int n, float d, DeviceBuffer<float>& out);
  void syrk(const float* x, int n, std::int64_t k, std::int64_t ld, float alpha, float* c);
  float* scratch(DeviceBuffer<float>& b, std::size_t n);
  double nonfinite_count(const float* x, std::int64_t n);

  Context& ctx_;
  NetworkSpec spec_;
  std::vector<ParamInfo> info_;
  OptimConfig optim_;
  std::vector<char> decays_;
  KfacConfig cfg_;
  std::uint64_t seed_ = 0;
  KfacStatistics statistics_;
  std::vector<KfacBlockLayout> blocks_;
  std::vector<BlockState> blocks_state_;
  std::vector<int> block_of_;            // per tensor: its block, −1 without one
  std::vector<DeviceBuffer<float>> v_;   // momentum, PyTorch order (trainable tensors)
  std::vector<DeviceBuffer<float>> u_;   // preconditioned directions of block tensors
  DeviceBuffer<float> gbar_, tmp_, ubar_, work_, work2_, patches_, columns_, eig_, nu_;
  DeviceBuffer<double> dstats_, partial_, dot_partial_;
  DeviceBuffer<int> info_dev_;
  DeviceBuffer<float> solver_ws_;
  bool initialized_ = false;
  bool inverses_ready_ = false;
  int init_batches_ = 0;
  struct Solver;
  std::unique_ptr<Solver> solver_;
};

}  // namespace wdlab::cuda

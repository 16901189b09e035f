#pragma once
// K-FAC with momentum, as the official code runs it (MATH.md §9.3–9.5). Every dense/conv layer l
// is one Kronecker block with input factor A_l ((in+1)² with a trailing homogeneous coordinate
// when the layer has a bias; conv: in = C·R·S) and output factor S_l (out²). Per step k:
//   1. g ← g + βθ for L2-regularized tensors                                  (Eq. 6)
//   2. Ḡ_l = [dW db] (out × (in+1));  U_l = S̃_l⁻¹ Ḡ_l Ã_l⁻¹ · (1/T_l)  (T_l = 1 for dense)
//      with the damped inverses of the last inverse update (common/optim/kfac_policy.hpp,
//      damped_inverse.hpp); tensors without a block (BN γ/β) take U = g. A dense layer given
//      its gradient factors Ḡ = D X̄ᵀ (rank ≤ B) may take U = (S̃⁻¹D)(Ã⁻¹X̄)ᵀ instead, and
//      ⟨Ḡ, U⟩ = Σ (DᵀS̃⁻¹D) ⊙ (X̄ᵀÃ⁻¹X̄) for step 3: its gradient is never read (low_rank).
//   3. KL clip (κ > 0): ν = min(1, √(κ / (η²·Σ⟨g, U⟩))) over all updated tensors; U ← νU
//   4. v ← μv + U;   step = v (+ βθ for decayed tensors under wd, Eq. 7);   θ ← θ − η·step
// Factors: A ← εA + (1−ε)Â, S ← εS + (1−ε)Ŝ in update_factors, after step k when
// (k+1) mod T_cov = 0 (no zero-debias; identity until the first statistics unless
// init_factors sets them). Inverses: at the start of step k when k mod T_inv = 0, or when none
// exist yet (the first step, and the first step after init_factors / a new factor set).
// State: "optim.kfac.{A,S,A_inv,S_inv}.<layer>", "optim.kfac.damping.<layer>" (1×4: λ', π,
// π√λ', √λ'/π of the last inverse update; diagnostics), "optim.momentum.<param>",
// "optim.kfac.initialized", "optim.kfac.inverses_ready".
#include <cstdint>
#include <string>
#include <vector>

#include "reference/optim/damped_inverse.hpp"
#include "common/optim/kfac_policy.hpp"
#include "reference/optim/optimizer.hpp"

namespace wdlab::ref {

/// The engine's estimator for an optimizer kind: kfac_f → fisher, kfac_g → gauss_newton.
CurvatureKind curvature_kind(optim::OptimizerKind k);

/// One raised damping (a factor that was not numerically positive definite).
struct DampingRaise {
  std::int64_t iteration = 0;  // the step whose inverse update raised it
  int layer = 0;
  std::string layer_name;
  char factor = 'A';  // 'A' or 'S'
  double requested = 0, used = 0;
  int raises = 0;
};

/// The data-pass initialization (the official roger_init): per-batch statistics are summed over
/// one pass and divided by the number of batches; the mean goes to Kfac::init_factors.
template <class T>
class FactorAverage {
 public:
  void add(const std::vector<FactorStats<T>>& batch);
  int batches() const { return batches_; }
  std::vector<FactorStats<T>> mean() const;  // InternalError when no batch was added

 private:
  std::vector<FactorStats<T>> sum_;
  int batches_ = 0;
};

template <class T>
class Kfac final : public Optimizer<T> {
 public:
  Kfac(const optim::KfacConfig& cfg, const optim::RegConfig& reg, const NetworkSpec& spec,
       const ParamStore<T>& like, CurvatureKind curvature);
  std::string name() const override;
  NamedTensors<T> state() const override;
  void load_state(const NamedTensors<T>& state) override;

  bool wants_factors(std::int64_t iteration) const override;
  bool wants_factor_init() const override;
  /// A ← Â, S ← Ŝ (the official roger_init after averaging over the pass); marks the factors
  /// initialized and the inverses stale.
  void init_factors(const std::vector<FactorStats<T>>& mean_stats) override;
  void update_factors(const std::vector<FactorStats<T>>& stats, std::int64_t iteration) override;
  void set_gradient_factors(const std::vector<GradientFactors<T>>& factors) override;
  bool direction_from_factors(int layer, Eigen::Index batch) const override;
  /// How many blocks the last step preconditioned through gradient factors (low rank).
  int last_low_rank_blocks() const { return last_low_rank_; }

  CurvatureKind curvature() const { return curvature_; }
  /// The probe covariance scale to pass to kfac_statistics (K-FAC-G; 1 for K-FAC-F).
  double probe_variance() const;
  const optim::KfacConfig& config() const { return cfg_; }
  /// Every raised damping so far, in order.
  const std::vector<DampingRaise>& damping_raises() const { return raises_; }
  /// ν of the last step (1 when clipping is off or inactive).
  double last_kl_scale() const { return last_kl_scale_; }

  /// Read-only view of a block (tests, diagnostics): factors, damped inverses in use and the
  /// damping split of the last inverse update.
  struct BlockView {
    int layer;
    int locations;
    const Mat<T>& A;
    const Mat<T>& S;
    const Mat<T>& A_inv;
    const Mat<T>& S_inv;
    optim::SplitDamping damping;
  };
  int num_blocks() const { return int(blocks_.size()); }
  BlockView block(int b) const;

 private:
  struct Block {
    int layer = 0;
    std::string name;  // layer name ("features.0")
    int w = -1, b = -1;  // tensor indices of weight and bias (−1: no bias)
    Eigen::Index out = 0, in = 0;  // weight is out × in in the compute layout
    int locations = 1;             // T
    Mat<T> A, S, A_inv, S_inv;
    optim::SplitDamping damping;
    Eigen::Index a_dim() const { return in + (b >= 0 ? 1 : 0); }
  };
  void do_step(ParamStore<T>& params, const ParamStore<T>& grads, T lr, std::int64_t k) override;
  /// Whether a block preconditions a batch of B examples through its gradient factors (below).
  bool low_rank(const Block& blk, Eigen::Index B) const;
  void compute_inverses(std::int64_t k);
  /// Checks that stats hold exactly one entry per block with the right shapes; returns, per
  /// block, the index of its entry.
  std::vector<int> match(const std::vector<FactorStats<T>>& stats) const;

  optim::KfacConfig cfg_;
  CurvatureKind curvature_;
  std::vector<Block> blocks_;
  std::vector<GradientFactors<T>> grad_factors_;  // for the next step only
  int last_low_rank_ = 0;
  std::vector<int> block_of_;  // per tensor: block index, −1 for tensors without a block
  std::vector<Mat<T>> v_;
  /// The step's buffers, kept between steps (their shapes repeat): L2-augmented gradients, each
  /// block's preconditioned direction U, the products' operands and, per tensor, whether its
  /// direction came from gradient factors (its gradient was not read).
  struct StepWork {
    std::vector<Mat<T>> l2, U;
    Mat<T> Xbar, G, left, right, DtL, XtR;
    std::vector<std::uint8_t> from_factors;
  };
  StepWork work_;
  bool initialized_ = false;
  bool inverses_ready_ = false;
  std::vector<DampingRaise> raises_;
  double last_kl_scale_ = 1;
};

}  // namespace wdlab::ref

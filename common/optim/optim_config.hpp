#pragma once
// Optimizer configuration, backend-neutral (DESIGN.md: defined once, both backends read it):
// the optimizer kinds and their one spelling, plain structs with their defaults (MATH.md §9.3,
// §9.7, §10) and validate(), which throws UsageError naming the field at fault. Also the
// regularization scope: which tensors L2 / weight decay touch (the official `weight_list`,
// MATH.md §9.7), decided here for both backends.
#include <array>
#include <cstddef>
#include <string>
#include <vector>

#include "common/network_spec.hpp"

namespace wdlab::optim {

enum class OptimizerKind { sgd, adam, kfac_f, kfac_g, lion };
/// Every OptimizerKind, in declaration order (config parsing, --help lists, tests loop over it).
inline constexpr std::array<OptimizerKind, 5> all_optimizer_kinds{
    OptimizerKind::sgd, OptimizerKind::adam, OptimizerKind::kfac_f, OptimizerKind::kfac_g, OptimizerKind::lion};
static_assert(all_optimizer_kinds.size() == std::size_t(OptimizerKind::lion) + 1,
              "all_optimizer_kinds must list every OptimizerKind");
inline bool is_kfac(OptimizerKind k) { return k == OptimizerKind::kfac_f || k == OptimizerKind::kfac_g; }
/// none; l2: g ← g + βθ before the optimizer (Eq. 6); wd: decoupled θ ← θ − ηβθ (Eq. 7).
enum class Regularization { none, l2, wd };
/// all: every trainable tensor; conv: conv layers (and their BN); fc: dense layers (and their
/// BN), the official "last"; list: exactly the names in RegConfig::wd_params.
enum class WdScope { all, conv, fc, list };
enum class DecayBiases { yes, no };  // dense/conv biases (scopes all/conv/fc)
enum class DecayBn { yes, no };      // BN γ/β (scopes all/conv/fc)
enum class MomentumKind { heavy_ball, nesterov };
enum class InverseMethod { cholesky, eig };
/// identity: factors start at I; data_pass: one pass over the training set sets them (the
/// official `roger_init`, MATH.md §9.3 item 8).
enum class FactorInit { identity, data_pass };

/// The one spelling of a kind, in configs, the CLI, run names and reports: sgd, adam, kfac-f,
/// kfac-g, lion. (The reference K-FAC's Optimizer::name(), written into meta.json's backend line, is
/// its own "kfac_f"/"kfac_g" and stays so.)
std::string to_string(OptimizerKind k);
/// "sgd, adam, kfac-f, kfac-g, lion": for messages and --help.
std::string optimizer_kind_list();
std::string to_string(Regularization r);
std::string to_string(WdScope s);
std::string to_string(MomentumKind m);
std::string to_string(InverseMethod m);
std::string to_string(FactorInit f);
/// Inverses of to_string; throw UsageError(field, ...) on an unknown name.
OptimizerKind parse_optimizer_kind(const std::string& field, const std::string& s);
Regularization parse_regularization(const std::string& field, const std::string& s);
WdScope parse_wd_scope(const std::string& field, const std::string& s);
MomentumKind parse_momentum_kind(const std::string& field, const std::string& s);
InverseMethod parse_inverse_method(const std::string& field, const std::string& s);
FactorInit parse_factor_init(const std::string& field, const std::string& s);

struct RegConfig {
  Regularization kind = Regularization::none;
  double weight_decay = 0.0;  // β
  WdScope scope = WdScope::all;
  std::vector<std::string> wd_params;  // scope list only: exact parameter names
  DecayBiases biases = DecayBiases::yes;  // the official configs decay biases ("all")
  DecayBn bn = DecayBn::yes;
  void validate() const;
};

struct SgdConfig {
  double momentum = 0.9;  // μ (every official config)
  MomentumKind kind = MomentumKind::heavy_ball;
  void validate() const;
};

struct AdamConfig {
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  void validate() const;
};

/// Lion (Chen et al. 2023): c = β₁m + (1−β₁)g, θ ← θ − η·sign(c), m ← β₂m + (1−β₂)g.
struct LionConfig {
  double beta1 = 0.9, beta2 = 0.99;  // the paper's defaults
  void validate() const;
};

struct KfacConfig {
  double damping = 1e-3;        // λ, split per factor by π (MATH.md §9.3)
  int t_cov = 10;               // factor EMA update every t_cov steps
  int t_inv = 100;              // damped inverses recomputed every t_inv steps
  double cov_ema_decay = 0.95;  // ε in A ← εA + (1−ε)Â
  double kl_clip = 0.0;         // κ; 0 = off
  double momentum = 0.9;        // μ, applied after preconditioning
  InverseMethod inverse = InverseMethod::cholesky;
  FactorInit factor_init = FactorInit::identity;
  /// K-FAC-G probe covariance scale: 1.0 gives the paper's G = E[JᵀJ]; 2.0 reproduces the
  /// official code's N(z, 0.5 I) surrogate (MATH.md §9.4). Passed to the engine's
  /// kfac_statistics; unused by K-FAC-F.
  double gn_probe_variance = 1.0;
  /// A factor that is not numerically positive definite after damping has its damping raised
  /// ×10 at most this many times before NumericError.
  int max_damping_raises = 12;
  void validate() const;
};

struct OptimConfig {
  OptimizerKind kind = OptimizerKind::sgd;
  SgdConfig sgd;
  AdamConfig adam;
  KfacConfig kfac;
  LionConfig lion;
  RegConfig reg;
  void validate() const;  // the sub-config of `kind` and reg
};

/// The forms a kind's mechanism metrics take (common/train/measure.cpp, rotation.cpp), chosen
/// from what those files implement, so a new kind picks its forms here and touches neither:
///   elr_opt: momentum_sgd η/((1−μ)‖W‖²) (MATH.md §5); normalized η/‖W‖ (a step of fixed size
///            per coordinate: Adam, van Laarhoven 2017; Lion's sign); kfac_damped η/((1−μ)λ‖W‖²)
///            (MATH.md §7, damping-dominated);
///   rot_pred: sgd_heavy_ball (Wan et al. 2021 for L2, decoupled WD in rotation.hpp), adamw
///            (Kosson et al. 2024, decoupled WD only), none (no equilibrium derived: Nesterov,
///            K-FAC, Lion, whose sign update's correlation over steps sets it).
enum class ElrForm { momentum_sgd, normalized, kfac_damped };
enum class RotationLaw { sgd_heavy_ball, adamw, none };
struct MetricForms {
  ElrForm elr = ElrForm::momentum_sgd;
  RotationLaw rotation = RotationLaw::sgd_heavy_ball;
  double momentum = 0;  // μ of the forms: SGD μ, Adam/Lion β₁, K-FAC μ
  double damping = 0;   // K-FAC λ (damping_eff), 0 otherwise
  /// A sign update (Lion): each coordinate moves by ±lr, so a float32 side may step a coordinate
  /// whose input to sign() is at rounding level the other way; the crosscheck counts those
  /// (float32_sign_flips) instead of comparing them (apps/crosscheck/report.cpp).
  bool sign_update = false;
};
/// A switch over the kinds without default: a new kind is a compile error here until it has forms.
MetricForms metric_forms(const OptimConfig& c);

/// How many tensors of a parameter's shape a first-order kind keeps (SGD 1, Adam 2, Lion 1); 0
/// for K-FAC, whose state is per block (the CUDA backend's memory plan counts it apart).
int param_state_tensors(OptimizerKind k);

/// The per-parameter optimizer state in checkpoints: the tensor "<prefix><parameter name>" has
/// the parameter's shape (common/train/optim_layout.hpp). Every optimizer's per-parameter state
/// is listed here; K-FAC's matrices and the scalars are not per-parameter.
inline constexpr std::array<const char*, 4> param_state_prefixes{"optim.momentum.", "optim.adam.m.",
                                                                  "optim.adam.v.", "optim.lion.exp_avg."};

/// The scope family of a layer's tensors: conv2d → conv, dense → fc; a BN layer belongs to the
/// dense/conv layer it normalizes (found by walking back through parameterless layers; failing
/// that, conv when its input has spatial extent > 1×1).
enum class ScopeFamily { conv, fc };
ScopeFamily scope_family(const NetworkSpec& spec, int layer);

/// True iff tensor `p` is regularized under `reg`: reg.kind ≠ none, p is trainable (running
/// statistics never decay) and p is in reg.scope (biases / BN γ,β filtered by reg.biases /
/// reg.bn, except for scope list which takes the names literally).
bool decays(const ParamInfo& p, const NetworkSpec& spec, const RegConfig& reg);

/// Scope list: every name in wd_params must be a trainable tensor of `spec` (UsageError
/// "wd_params" otherwise).
void validate_scope(const RegConfig& reg, const NetworkSpec& spec);

/// Per entry of spec.params(): 1 iff decays(p, spec, reg). What a backend takes beside the
/// OptimConfig, so that both backends regularize the same tensors. Validates the scope first.
std::vector<char> decay_flags(const NetworkSpec& spec, const RegConfig& reg);
/// InternalError unless `flags` has one entry per tensor of `spec` and marks no running statistic.
void check_decay_flags(const NetworkSpec& spec, const std::vector<char>& flags);

}  // namespace wdlab::optim

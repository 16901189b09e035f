#pragma once
// The mechanism metrics (README, "wdlab measure and the mechanism metrics"), backend-neutral: a
// backend returns numbers (MeasureSummary below, Backend::measure_summary), and the rows are named
// once, by metric_rows (measure.cpp) and rotation_rows (rotation.cpp). <param> is a weight
// tensor's PyTorch name ("features.0.weight").
//   norms        norm.<param> = ‖W_l‖₂
//   elr          elr.<param> = η/‖W_l‖² (MATH.md §5) and elr_opt.<param>, the optimizer's own form:
//                SGD (heavy ball or Nesterov, momentum μ): η/((1−μ)‖W_l‖²)   (MATH.md §5, [DER])
//                Adam: η/‖W_l‖ (van Laarhoven 2017; the paper gives none, MATH.md §5)
//                K-FAC: η/((1−μ)·λ·‖W_l‖²), the damping-dominated limit of Eq. 16 (MATH.md §7),
//                       the largest effective step along any direction of θ̂_l
//   damping      damping_eff.<param> = λ‖W_l‖² (Eq. 16) and damping_frac.<param>, the fraction of
//                the eigenvalues T·α_i·σ_j of the optimizer's current block T·(A_l ⊗ S_l) above λ
//                (equivalently of ‖W_l‖²·T·(A ⊗ S), the block at normalized weights, above
//                λ‖W_l‖²); K-FAC runs only
//   jacobian     jac_norm = (1/N) Σ_n ‖J_x(x_n)‖²_F over the probe set, exact (K backward passes)
//   jacobian_est jac_norm_est = mean over M random projections v (E[v vᵀ] = I) of
//                (1/N) Σ_n ‖J_x(x_n)ᵀ v_n‖², unbiased for jac_norm
//   gn           kfac_gn_norm = Σ_l T_l·vec(W̄_l)ᵀ(A_l ⊗ S_l)vec(W̄_l) with exact Gauss-Newton
//                output factors on the probe set (MATH.md §6), and gn_norm = θᵀGθ exact
//   trace        gn_trace.<param>, fisher_trace.<param> = ‖W_l‖²·T_l·tr(A_l)·tr(S_l), the trace of
//                the K-FAC block at normalized weights (Eq. 15, Fig. 7), with exact output factors;
//                for dense layers also gn_trace_exact.<param>, fisher_trace_exact.<param> (the
//                exact diagonal block's trace, same normalization)
//   rotation     per weight tensor (rotation.hpp has the derivations):
//                rot.<param>        mean over the epoch's steps of ∠(θ_t, θ_{t+1}) in radians
//                grad_ratio.<param> mean over the epoch's steps of ‖g_t‖/‖θ_t‖ (g_t the minibatch
//                                   loss gradient of step t, before L2 or weight decay)
//                rot_pred.<param>   the equilibrium angular update: SGD (heavy ball) with L2
//                                   √(2ηλ/(1+α)) (Wan et al. 2021), with decoupled WD
//                                   √(2ηλ(1−α)/(1+α)); AdamW √(2ηλ(1−β₁)/(1+β₁)) (Kosson et al. 2024)
//                elr_pred.<param>   η/‖θ‖² at that equilibrium, SGD only: rot_pred·√(1−α²)/‖g̃‖ with
//                                   ‖g̃‖ = rms_t ‖g_t‖·‖θ_t‖ the gradient at unit norm
//                null (JSON and CSV, as train_loss without steps) where not applicable:
//                rot/grad_ratio/elr_pred before any step (epoch 0); the predictions without decay,
//                under K-FAC, Adam with L2, Nesterov, or for a tensor not followed by BN alone
//                (not scale-invariant).
//                `wdlab train` accumulates it per step; `wdlab measure` takes one step from the
//                checkpoint on the probe batch, reads it, and restores the state.
//   gap          gen_gap = test_loss − train_loss (computed by the trainer, not the backend)
//   train_eval   train_eval_loss, train_eval_acc: the training set in evaluation mode; gen_gap
//                then uses train_eval_loss instead of the epoch's running mean (trainer side)
// Probe set (metrics.probe_split, docs/curvature-probes.md): the curvature groups (jacobian,
// jacobian_est, gn, trace) run on the first N examples of the training split (train, the default:
// the curvature the optimizer sees) or of the test split (test, the meaning before the key
// existed). BN during those passes (metrics.curvature_bn):
//   eval   running statistics: example n's output depends on x_n alone, every expectation is an
//          exact average over the N examples.
//   batch  the probe batch's own statistics, as K-FAC estimates its factors in training mode
//          (MATH.md §9.6): the backward runs through the batch-statistics coupling. The output
//          cotangent of example n in pass j is s_n·B_n e_j with Rademacher signs s_n (Philox
//          purpose curvature_sign, step = rng_step, index = n), so E_s[g gᵀ] keeps only the terms
//          of independent per-example cotangents, Σ_m B_nm H_m B_nmᵀ (what sampled targets give in
//          expectation); the cross terms left by one draw are O(1/N). Affects the K-FAC-block
//          metrics: kfac_gn_norm, gn_trace, fisher_trace and their _exact forms.
//          jac_norm, jac_norm_est and gn_norm are properties of the per-example function f(x) and
//          always use eval mode.
// Without BN (Mechanism II, Table 2, Fig. 5) the two modes coincide.
#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/optim/optim_config.hpp"

namespace wdlab::train {

enum class MetricGroup : unsigned {
  norms = 1u << 0,
  elr = 1u << 1,
  damping = 1u << 2,
  jacobian = 1u << 3,
  jacobian_est = 1u << 4,
  gn = 1u << 5,
  trace = 1u << 6,
  gap = 1u << 7,
  train_eval = 1u << 8,
  rotation = 1u << 9,
};
/// Every MetricGroup, in declaration order: bit i is the i-th entry (checked below), so the name
/// table (epoch_metrics.cpp), "all" and the tests loop over this list, never over a copy.
inline constexpr std::array<MetricGroup, 10> all_metric_groups{
    MetricGroup::norms, MetricGroup::elr,   MetricGroup::damping, MetricGroup::jacobian,   MetricGroup::jacobian_est,
    MetricGroup::gn,    MetricGroup::trace, MetricGroup::gap,     MetricGroup::train_eval, MetricGroup::rotation};
constexpr bool metric_groups_are_consecutive_bits() {
  for (std::size_t i = 0; i < all_metric_groups.size(); ++i)
    if (unsigned(all_metric_groups[i]) != 1u << i) return false;
  return true;
}
static_assert(metric_groups_are_consecutive_bits() &&
                  unsigned(all_metric_groups.back()) == unsigned(MetricGroup::rotation),
              "all_metric_groups must list every MetricGroup, bit i at position i, the last one last");

struct MetricGroups {
  unsigned bits = 0;
  bool has(MetricGroup g) const { return (bits & unsigned(g)) != 0; }
  MetricGroups& add(MetricGroup g) {
    bits |= unsigned(g);
    return *this;
  }
  bool operator==(const MetricGroups&) const = default;
};

/// The default of `wdlab train`: the cheap groups norms, elr, gap.
MetricGroups default_metric_groups();
/// "norms,elr,gap" → groups; "all" = every group, "none" = no group, "default" = the default.
/// UsageError(field, ...) naming an unknown group and listing the known ones.
MetricGroups parse_metric_groups(const std::string& field, const std::string& list);
/// The comma-separated names, in the order of MetricGroup ("none" when empty).
std::string to_string(MetricGroups g);
/// One line per group with what it logs (for --help).
std::string metric_groups_help();

enum class ProbeDistribution { rademacher, gaussian };
std::string to_string(ProbeDistribution d);
ProbeDistribution parse_probe_distribution(const std::string& field, const std::string& s);

/// Which split the curvature groups' probe set comes from (metrics.probe_split).
enum class ProbeSplit { train, test };
std::string to_string(ProbeSplit s);
ProbeSplit parse_probe_split(const std::string& field, const std::string& s);

/// BN during the curvature passes (metrics.curvature_bn): running statistics or the probe
/// batch's own (see the top of this file).
enum class CurvatureBn { eval, batch };
std::string to_string(CurvatureBn m);
CurvatureBn parse_curvature_bn(const std::string& field, const std::string& s);

/// Whether g holds a group computed on the probe set (jacobian, jacobian_est, gn, trace).
bool uses_probe(MetricGroups g);

struct MeasureRequest {
  MetricGroups groups;
  CurvatureBn curvature_bn = CurvatureBn::eval;  // for kfac_gn_norm and the traces
  double lr = 0;           // the scheduled η, for elr / elr_opt
  int jac_probes = 16;     // M, for jac_norm_est
  ProbeDistribution probe_distribution = ProbeDistribution::rademacher;
  std::uint64_t seed = 1;  // shared Philox key; purpose jacobian_probe
  std::uint64_t rng_step = 0;  // e.g. the epoch: probes differ between epochs
};

using NamedValues = std::vector<std::pair<std::string, double>>;

// ---- What a backend returns (Backend::measure_summary): numbers without row names. The rows
// (names, normalizations, the optimizer's own forms) are built once, by metric_rows below.

/// The optimizer's metric forms and constants (common/optim: optim::metric_forms of its config).
using OptimizerSummary = optim::MetricForms;

/// How a weight tensor is regularized: none, L2 (g ← g + λθ before the optimizer) or decoupled
/// weight decay (θ ← θ − ηλθ after it).
enum class TensorDecay { none, l2, wd };
/// Whether the network's output is invariant to W_l ← c·W_l (c > 0): the layer's only consumer is
/// a BN layer (weight_scale_invariance).
enum class ScaleInvariance { invariant, not_invariant };

struct WeightSummary {
  std::string name;  // the weight tensor's PyTorch name
  double norm = 0;   // ‖W_l‖₂
  TensorDecay decay = TensorDecay::none;
  double decay_coeff = 0;  // λ of that decay (0 without)
  ScaleInvariance scale = ScaleInvariance::not_invariant;
};

/// How tensor i is regularized, given whether it decays (optim::decay_flags) and c.reg.
TensorDecay tensor_decay(const optim::OptimConfig& c, bool decays);

/// One K-FAC block's damping fraction (the eigenvalue fraction above λ; measure.hpp, damping).
struct DampingSummary {
  std::string weight;
  double fraction = 0;
};

/// One weight layer's K-FAC block traces T·tr(A)·tr(S) at the current weights (not normalized)
/// with exact output factors; exact_*: the exact diagonal block's trace (dense layers only).
struct TraceSummary {
  std::string weight;
  double gn = 0, fisher = 0;
  std::optional<double> gn_exact, fisher_exact;
};

struct MeasureSummary {
  std::vector<WeightSummary> weights;          // every weight tensor, spec order
  std::optional<OptimizerSummary> optimizer;   // absent: no elr_opt, damping, rot_pred rows
  std::vector<DampingSummary> damping;         // K-FAC blocks (group damping)
  std::optional<double> jac_norm, kfac_gn_norm, gn_norm, jac_norm_est;
  std::vector<TraceSummary> traces;            // group trace, in block order
};

/// One step of one weight tensor, as a backend records it under WeightSteps::record
/// (Backend::record_weight_steps; StepStats::weight_steps, one per weight tensor, spec order).
struct WeightStep {
  double dot = 0;           // ⟨θ_t, θ_{t+1}⟩
  double norm2_before = 0;  // ‖θ_t‖²
  double norm2_after = 0;   // ‖θ_{t+1}‖²
  double grad2 = 0;         // ‖g_t‖², the minibatch loss gradient (before L2 / weight decay)
};
/// Whether train_step records WeightStep per weight tensor (group rotation).
enum class WeightSteps { off, record };

/// The named rows of every group in req.groups except gap, train_eval and rotation (the
/// trainer's and rotation.hpp's), in the order: per weight norm., elr., elr_opt.; damping_eff.,
/// damping_frac. per K-FAC block; jac_norm; kfac_gn_norm, gn_norm; per block gn_trace.,
/// fisher_trace. (+ _exact); jac_norm_est.
NamedValues metric_rows(const MeasureSummary& s, const MeasureRequest& req);

}  // namespace wdlab::train

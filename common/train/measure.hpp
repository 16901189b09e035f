#pragma once
// What Backend::measure computes: groups of the paper's mechanism metrics (README, "Mechanism
// metrics"), backend-neutral. <param> is a weight tensor's PyTorch name ("features.0.weight").
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
#include <string>
#include <utility>
#include <vector>

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
};
/// Every MetricGroup, in declaration order: bit i is the i-th entry (checked below), so the name
/// table (epoch_metrics.cpp), "all" and the tests loop over this list, never over a copy.
inline constexpr std::array<MetricGroup, 9> all_metric_groups{
    MetricGroup::norms, MetricGroup::elr,   MetricGroup::damping, MetricGroup::jacobian,  MetricGroup::jacobian_est,
    MetricGroup::gn,    MetricGroup::trace, MetricGroup::gap,     MetricGroup::train_eval};
constexpr bool metric_groups_are_consecutive_bits() {
  for (std::size_t i = 0; i < all_metric_groups.size(); ++i)
    if (unsigned(all_metric_groups[i]) != 1u << i) return false;
  return true;
}
static_assert(metric_groups_are_consecutive_bits() &&
                  unsigned(all_metric_groups.back()) == unsigned(MetricGroup::train_eval),
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

}  // namespace wdlab::train

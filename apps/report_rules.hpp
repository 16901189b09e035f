#pragma once
// The pre-registered signature rules of `wdlab report` (issue 12 point 3). Each rule names the
// quantity measured, the paper figure/table it mirrors and the threshold that decides its verdict
// ("shows" / "does not show" / "not measured" where runs or metrics are missing). The thresholds
// were fixed in this file and in README.md ("Pre-registered signature rules") before the final
// runs of the demo and laptop suites; a change of criterion is a commit of its own with its reason.
//
// Runs are paired by family (RunRecord::family: group, data, network, BN, augmentation, optimizer,
// batch) and seed (config "seed"): "none" vs "wd" of the same seed. Factors are summarized over
// seeds by their geometric mean, [min, max] and the number of seeds; with one seed the row says
// "1 seed: no spread" and the verdict still follows the rule on that seed.
#include <array>

namespace wdlab::app::rules {

// I.1 ELR trajectory (paper Fig. 3). BN network + SGD, runs none and wd per seed; for the first
// layer with an elr.* key: R_s = (elr/lr at the last row of wd) / (elr/lr at the last row of none).
// SHOWS iff geomean_s R_s >= 2 and min_s R_s > 1.
inline constexpr double kElrRatioGeomean = 2.0;
inline constexpr double kElrRatioMin = 1.0;

// I.2 Rotational equilibrium (beyond the paper: MATH.md §16, Wan et al. 2021). In each seed's wd
// run, for every weight with a non-null rot_pred at the last row, q = rot/rot_pred at the last
// row; per seed the median q over those layers. SHOWS iff every seed's median q is in [2/3, 3/2].
inline constexpr double kRotationLow = 2.0 / 3.0;
inline constexpr double kRotationHigh = 3.0 / 2.0;

// II.1 Jacobian factor (paper Table 2). No-BN network, per optimizer (sgd, kfac-g) and seed:
// F = jac_norm(none) / jac_norm(wd) at the last row (jac_norm_est where jac_norm is absent).
// SHOWS iff geomean F_kfac-g >= 1.5 x geomean F_sgd and min_s F_kfac-g > max_s F_sgd.
inline constexpr double kJacobianGeomeanFactor = 1.5;

// II.2 GN norm ~ Jacobian (paper Fig. 5). Over all runs (networks and seeds) of an experiment
// that log kfac_gn_norm and jac_norm: Pearson r of log kfac_gn_norm vs log jac_norm at the last
// row; with >= 3 seeds also r per seed (min-max). SHOWS iff r > 0.5 over >= 8 points (fewer
// points: not measured). r(log GN, gap) and r(log J, gap) are reported beside it, no verdict.
inline constexpr double kGnJacobianR = 0.5;
inline constexpr int kGnJacobianMinPoints = 8;
inline constexpr int kPerSeedRMinSeeds = 3;

// III.1 Effective damping (paper Eq. 14/16, Sec. 4.3). BN network + K-FAC-F, runs none / wd (all
// layers) / wd on the non-BN layers only (reg class wd-fc or wd-list), per seed: growth
// D = damping_eff at the last row / damping_eff at the first row that has it, for the first layer
// with a damping_eff.* key (a BN layer's weight). ratio_s = D_none,s / D_wd,s.
// SHOWS iff geomean_s ratio_s >= 2 and min_s ratio_s > 1. D of the non-BN-only run beside it.
inline constexpr double kDampingRatioGeomean = 2.0;
inline constexpr double kDampingRatioMin = 1.0;

// III.2 Curvature traces (paper Fig. 7). In each seed's none run of that setting, for the first
// layer with fisher_trace.*: Fisher fall = fisher_trace first/last, GN span = gn_trace max/min.
// SHOWS iff in every seed the Fisher fall > 10 x the GN span.
inline constexpr double kFisherFallOverGnSpan = 10.0;

/// One rule as the report and README print it.
struct Rule {
  const char* id;
  const char* mechanism;
  const char* paper;  // the figure/table of the paper it mirrors
  const char* rule;   // the criterion, thresholds included
};

inline constexpr std::array<Rule, 6> kRules = {{
    {"I.1", "I: ELR trajectory", "Fig. 3",
     "R_s = (elr/lr, last row, wd) / (elr/lr, last row, none), first elr.* layer; shows iff geomean R ≥ 2 and "
     "min R > 1"},
    {"I.2", "I: rotational equilibrium (beyond the paper, MATH.md §16)", "— (Wan et al. 2021)",
     "q = rot/rot_pred at the last row of wd, median over layers with rot_pred; shows iff every seed's median q "
     "∈ [2/3, 3/2]"},
    {"II.1", "II: Jacobian factor", "Table 2",
     "F = jac_norm(none)/jac_norm(wd), last row, no BN; shows iff geomean F_kfac-g ≥ 1.5 × geomean F_sgd and "
     "min F_kfac-g > max F_sgd"},
    {"II.2", "II: GN norm ~ Jacobian", "Fig. 5",
     "Pearson r(log kfac_gn_norm, log jac_norm) over an experiment's runs; shows iff r > 0.5 over ≥ 8 points"},
    {"III.1", "III: effective damping", "Eq. 14/16, Sec. 4.3",
     "D = damping_eff last/first (first damping_eff.* layer), ratio = D_none/D_wd; shows iff geomean ratio ≥ 2 "
     "and min ratio > 1"},
    {"III.2", "III: curvature traces", "Fig. 7",
     "none run: Fisher fall = fisher_trace first/last, GN span = gn_trace max/min (first fisher_trace.* layer); "
     "shows iff Fisher fall > 10 × GN span in every seed"},
}};

}  // namespace wdlab::app::rules

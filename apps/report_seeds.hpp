#pragma once
// Runs of a report grouped by family and seed (the pairing of the signature rules,
// apps/report_rules.hpp), and the summary of a factor over seeds: geometric mean, [min, max], n.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "apps/report_runs.hpp"

namespace wdlab::app {

/// Regularization class -> run, for one family and one seed.
using RegRuns = std::map<std::string, const RunRecord*>;
/// Seed -> its runs by regularization class, for one family.
using SeedRuns = std::map<std::int64_t, RegRuns>;

/// family -> seed -> reg class -> run (runs with metric rows only; a later duplicate replaces an
/// earlier one, and `collisions`, when given, gets "kept ← replaced" directory pairs for each).
std::map<std::string, SeedRuns> families_by_seed(const std::vector<RunRecord>& runs,
                                                 std::vector<std::string>* collisions = nullptr);

/// The run of class `reg` in m, or nullptr.
const RunRecord* run_of(const RegRuns& m, const std::string& reg);

/// A factor over seeds: geometric mean exp(mean log x), min, max over the n finite positive
/// values; `left_out` counts the values that were not (NaN, ≤ 0: a metric or run missing).
struct Spread {
  std::size_t n = 0, left_out = 0;
  double gmean = kNaN, min = kNaN, max = kNaN;
};
Spread spread_of(const std::vector<double>& values);

/// "×2.31 (geomean of 3 seeds, range ×2.10–×2.60)", "×2.31 (1 seed: no spread)", "—" when n = 0;
/// "; k seed(s) without the metric left out" appended where left_out > 0. `times` prefixes ×.
std::string fmt_spread(const Spread& s, bool times = true);

/// Mean and sample standard deviation (n − 1; NaN for n < 2) of the finite values.
struct MeanSd {
  std::size_t n = 0;
  double mean = kNaN, sd = kNaN;
};
MeanSd mean_sd(const std::vector<double>& values);

/// The median of the finite values (NaN when none).
double median(std::vector<double> values);

}  // namespace wdlab::app

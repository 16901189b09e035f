#pragma once
// The set of random networks `wdlab theory` runs every check over, and the runner.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "theory/record.hpp"

namespace wdlab::theory {

/// Whether run_suite also runs the ext.* checks (once per seed, on their own synthetic problem).
enum class Extensions { on, off };

struct SuiteOptions {
  std::vector<int> depths{1, 2, 3, 5};  // L hidden layers
  std::vector<int> widths{6};
  std::vector<std::uint64_t> seeds{1};
  int input_dim = 5;
  int classes = 3;
  int batch = 16;
  std::string only;  // run only ids starting with this prefix ("" = all)
  Extensions extensions = Extensions::on;
  /// Throws UsageError naming the bad option.
  void validate() const;
};

/// Runs every check (and the negative controls) over the networks; `progress` sees each row.
std::vector<CheckRecord> run_suite(const SuiteOptions& opt,
                                   const std::function<void(const CheckRecord&)>& progress = {});

/// True for the ids of negative controls (expected to fail).
bool is_control(const std::string& id);

/// The suite's verdict: every row that ran has its expected outcome and fewer than 5 % of the
/// rows were skipped (a precondition failed on that network).
struct SuiteSummary {
  int rows = 0, controls = 0, skipped = 0, unexpected = 0;
  bool ok() const { return unexpected == 0 && 20 * skipped < rows; }
};
SuiteSummary summarize(const std::vector<CheckRecord>& rows);

/// Every stable id the suite can produce, positive checks and controls.
const std::vector<std::string>& all_ids();

}  // namespace wdlab::theory

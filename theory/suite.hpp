#pragma once
// The set of random networks `wdlab theory` runs every check over, and the runner.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "theory/record.hpp"

namespace wdlab::theory {

struct SuiteOptions {
  std::vector<int> depths{1, 2, 3, 5};  // L hidden layers
  std::vector<int> widths{6};
  std::vector<std::uint64_t> seeds{1};
  int input_dim = 5;
  int classes = 3;
  int batch = 16;
  std::string only;  // run only ids starting with this prefix ("" = all)
  /// Throws UsageError naming the bad option.
  void validate() const;
};

/// Runs every check (and the negative controls) over the networks; `progress` sees each row.
std::vector<CheckRecord> run_suite(const SuiteOptions& opt,
                                   const std::function<void(const CheckRecord&)>& progress = {});

/// Every stable id the suite can produce, positive checks and controls.
const std::vector<std::string>& all_ids();

}  // namespace wdlab::theory

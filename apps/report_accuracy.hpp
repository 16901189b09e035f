#pragma once
// The report's informational accuracy table: final test accuracy, mean ± sd over seeds, per setting
// (family) and regularization class. No verdict: at this scale differences within the spread are
// noise, and accuracy is never the headline (the mechanism signatures are).
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "apps/report_runs.hpp"

namespace wdlab::app {

struct AccuracyTable {
  std::string markdown;
  nlohmann::ordered_json json;
};

AccuracyTable accuracy_table(const std::vector<RunRecord>& runs);

}  // namespace wdlab::app

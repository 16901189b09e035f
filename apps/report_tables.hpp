#pragma once
// Markdown tables of a report: the paper's Tables 1-3 beside ours, and every run.
#include <string>
#include <vector>

#include "apps/report_runs.hpp"

namespace wdlab::app {

std::string table1_md(const std::vector<RunRecord>& runs);
std::string table2_md(const std::vector<RunRecord>& runs);
std::string table3_md(const std::vector<RunRecord>& runs);
std::string runs_table_md(const std::vector<RunRecord>& runs);

/// "12.3" / "—" for NaN, with `digits` decimals.
std::string fmt_num(double v, int digits = 2);
/// A number in the form 1.23e-04 (or "—").
std::string fmt_sci(double v);

}  // namespace wdlab::app

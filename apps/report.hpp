#pragma once
// `wdlab report`: reads run directories (a run: config.json + metrics.jsonl; a sweep: its
// manifest's final run; any other directory: searched for runs below it) and writes DIR/report.md
// with the scale note, the mechanism signatures by the pre-registered rules (report_rules.hpp,
// report_signatures.hpp), test accuracy over seeds (report_accuracy.hpp), the paper's Tables 1-3
// beside ours, and figures drawn by scripts/plot_report.py (PNG and SVG).
#include <filesystem>
#include <string>
#include <vector>

namespace wdlab::app {

struct ReportOptions {
  std::vector<std::filesystem::path> inputs;
  std::filesystem::path out;
  std::string title = "wdlab report";
  bool figures = true;
  std::filesystem::path python = "/usr/bin/python3";  // Debian's, with python3-matplotlib
  std::filesystem::path plot_script;                  // default: scripts/plot_report.py of the source tree
  void validate() const;
};

/// Writes the report; returns 0, or 3 when no run was found in the inputs.
int run_report(const ReportOptions& o);

}  // namespace wdlab::app

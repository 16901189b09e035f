#include "apps/report_accuracy.hpp"

#include <map>
#include <set>

#include <fmt/format.h>

#include "apps/report_seeds.hpp"

namespace wdlab::app {

AccuracyTable accuracy_table(const std::vector<RunRecord>& runs) {
  AccuracyTable t;
  t.json = nlohmann::ordered_json::array();
  t.markdown =
      "Final test accuracy per setting and regularization, mean ± sd over seeds (sample sd). For information "
      "only, no verdict: differences within the spread are noise at this scale.\n\n"
      "| setting | runs | reg | seeds | test acc % |\n|---|---|---|---|---|\n";
  for (const auto& [family, seeds] : families_by_seed(runs)) {
    std::map<std::string, std::vector<const RunRecord*>> by_reg;
    for (const auto& [seed, regs] : seeds)
      for (const auto& [reg, r] : regs) by_reg[reg].push_back(r);
    for (const auto& [reg, rs] : by_reg) {
      std::vector<double> acc;
      std::set<std::string> names;
      for (const auto* r : rs) acc.push_back(100 * r->test_acc()), names.insert(r->setting());
      const MeanSd m = mean_sd(acc);
      std::string settings;
      for (const auto& n : names) settings += (settings.empty() ? "" : ", ") + n;
      const RunRecord& r0 = *rs.front();
      const std::string what = fmt::format("{}: {} {}{}, {}", r0.group, r0.dataset_label(), r0.network_label(),
                                           r0.bn() ? " BN" : "", r0.optimizer());
      const std::string value = m.n == 0   ? "—"
                                : m.n == 1 ? fmt::format("{:.2f} (1 seed: no spread)", m.mean)
                                           : fmt::format("{:.2f} ± {:.2f}", m.mean, m.sd);
      t.markdown += fmt::format("| {} | {} | {} | {} | {} |\n", what, settings, reg, m.n, value);
      t.json.push_back({{"setting", what}, {"runs", settings}, {"reg", reg}, {"n", m.n},
                        {"mean", m.mean}, {"sd", m.sd}});
    }
  }
  return t;
}

}  // namespace wdlab::app

#include "apps/report_seeds.hpp"

#include <algorithm>

#include <fmt/format.h>

namespace wdlab::app {

std::map<std::string, SeedRuns> families_by_seed(const std::vector<RunRecord>& runs,
                                                 std::vector<std::string>* collisions) {
  std::map<std::string, SeedRuns> f;
  for (const auto& r : runs) {
    if (r.rows.empty()) continue;
    const RunRecord*& slot = f[r.family()][r.seed()][r.reg_class()];
    if (slot != nullptr && collisions != nullptr)
      collisions->push_back(fmt::format("`{}/{}` replaces `{}/{}`", r.group, r.name, slot->group, slot->name));
    slot = &r;
  }
  return f;
}

const RunRecord* run_of(const RegRuns& m, const std::string& reg) {
  const auto it = m.find(reg);
  return it == m.end() ? nullptr : it->second;
}

Spread spread_of(const std::vector<double>& values) {
  Spread s;
  double log_sum = 0;
  for (double v : values) {
    if (!std::isfinite(v) || v <= 0) {
      ++s.left_out;
      continue;
    }
    log_sum += std::log(v);
    s.min = s.n == 0 ? v : std::min(s.min, v);
    s.max = s.n == 0 ? v : std::max(s.max, v);
    ++s.n;
  }
  if (s.n > 0) s.gmean = std::exp(log_sum / double(s.n));  // geomean = exp(mean_s log x_s)
  return s;
}

std::string fmt_spread(const Spread& s, bool times) {
  const char* x = times ? "×" : "";
  std::string t;
  if (s.n == 0) t = "—";
  else if (s.n == 1) t = fmt::format("{}{:.3g} (1 seed: no spread)", x, s.gmean);
  else t = fmt::format("{}{:.3g} (geomean of {} seeds, range {}{:.3g}–{}{:.3g})", x, s.gmean, s.n, x, s.min, x, s.max);
  if (s.left_out > 0) t += fmt::format("; {} seed(s) without the metric left out", s.left_out);
  return t;
}

MeanSd mean_sd(const std::vector<double>& values) {
  MeanSd m;
  double sum = 0;
  for (double v : values)
    if (std::isfinite(v)) sum += v, ++m.n;
  if (m.n == 0) return m;
  m.mean = sum / double(m.n);
  if (m.n < 2) return m;
  double ss = 0;
  for (double v : values)
    if (std::isfinite(v)) ss += (v - m.mean) * (v - m.mean);
  m.sd = std::sqrt(ss / double(m.n - 1));
  return m;
}

double median(std::vector<double> values) {
  values.erase(std::remove_if(values.begin(), values.end(), [](double v) { return !std::isfinite(v); }), values.end());
  if (values.empty()) return kNaN;
  std::sort(values.begin(), values.end());
  const std::size_t n = values.size();
  return n % 2 ? values[n / 2] : 0.5 * (values[n / 2 - 1] + values[n / 2]);
}

}  // namespace wdlab::app

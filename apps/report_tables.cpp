#include "apps/report_tables.hpp"

#include <map>
#include <set>
#include <tuple>

#include <fmt/format.h>

#include "apps/paper_numbers.hpp"

namespace wdlab::app {

std::string fmt_num(double v, int digits) { return std::isnan(v) ? "—" : fmt::format("{:.{}f}", v, digits); }
std::string fmt_sci(double v) { return std::isnan(v) ? "—" : fmt::format("{:.3g}", v); }

namespace {

/// Mean of f over the finished runs matching `pred`, and how many there were.
template <class P, class F>
std::pair<double, int> mean_of(const std::vector<RunRecord>& runs, P pred, F f) {
  double s = 0;
  int n = 0;
  for (const auto& r : runs) {
    if (r.done.is_null() || !pred(r)) continue;
    const double v = f(r);
    if (std::isnan(v)) continue;
    s += v;
    ++n;
  }
  return {n ? s / n : kNaN, n};
}

std::string cell(double ours, int n, double paper) {
  std::string o = fmt_num(ours) + (n > 1 ? fmt::format(" (n={})", n) : "");
  if (std::isnan(paper)) return o;
  if (std::isnan(ours)) return "— / " + fmt_num(paper);
  return fmt::format("{} / {} ({:+.2f})", o, fmt_num(paper), ours - paper);
}

std::string check(bool b) { return b ? "✓" : "✗"; }

bool wd_column(const RunRecord& r, bool wd) { return r.reg_class() == (wd ? "wd" : "none"); }

}  // namespace

std::string table1_md(const std::vector<RunRecord>& runs) {
  // Rows of the paper pool every run of that setting; rows of our own settings are per group (a
  // suite's experiment), since their epochs and subsets differ between experiments.
  using Key = std::tuple<std::string, std::string, bool, bool, std::string>;
  std::vector<Key> rows;
  std::map<Key, const paper::Table1Row*> paper_rows;
  std::set<std::tuple<std::string, std::string, bool, bool>> paper_settings;
  for (const auto& p : paper::kTable1) {
    Key k{p.dataset, p.network, p.bn, p.aug, ""};
    rows.push_back(k);
    paper_rows[k] = &p;
    paper_settings.insert({p.dataset, p.network, p.bn, p.aug});
  }
  std::set<Key> seen(rows.begin(), rows.end());
  for (const auto& r : runs) {
    if (r.cfg_num("batch_size", 0) != 128 || r.done.is_null()) continue;
    const auto c = r.reg_class();
    if (c != "none" && c != "wd") continue;
    const bool paper_setting = paper_settings.count({r.dataset_label(), r.network_label(), r.bn(), r.augment()});
    Key k{r.dataset_label(), r.network_label(), r.bn(), r.augment(), paper_setting ? "" : r.group};
    if (seen.insert(k).second) rows.push_back(k);
  }
  std::string md =
      "Test accuracy (%) at the end of training, batch 128. A cell reads *ours / paper (ours − paper)*;\n"
      "“–” is no regularization, “WD” decoupled weight decay on all layers (for SGD also L2, which the\n"
      "official SGD uses). Several runs in one cell are averaged (n). — : no run. Rows of our own settings\n"
      "name their group [experiment].\n\n"
      "| Dataset | Network | B | D |";
  for (const char* o : paper::kOptimizerLabels) md += fmt::format(" {} – | {} WD |", o, o);
  md += "\n|---|---|---|---|" + std::string("---|---|---|---|---|---|---|---|") + "\n";
  for (const auto& k : rows) {
    const auto& [ds, net, bn, aug, group] = k;
    const auto it = paper_rows.find(k);
    md += fmt::format("| {} | {}{} | {} | {} |", ds, net, group.empty() ? "" : " [" + group + "]", check(bn), check(aug));
    for (std::size_t o = 0; o < 4; ++o)
      for (int wd = 0; wd < 2; ++wd) {
        const auto [v, n] = mean_of(
            runs,
            [&](const RunRecord& r) {
              return r.cfg_num("batch_size", 0) == 128 && r.dataset_label() == ds && r.network_label() == net &&
                     r.bn() == bn && r.augment() == aug && r.optimizer() == paper::kOptimizers[o] && wd_column(r, wd) &&
                     (group.empty() || r.group == group);
            },
            [](const RunRecord& r) { return 100 * r.test_acc(); });
        md += " " + cell(v, n, it == paper_rows.end() ? kNaN : it->second->acc[o * 2 + std::size_t(wd)]) + " |";
      }
    md += "\n";
  }
  return md;
}

std::string table2_md(const std::vector<RunRecord>& runs) {
  std::string md =
      "Squared Frobenius norm of the input–output Jacobian, E‖J_x‖²_F, at the end of training (networks\n"
      "without BN; metric `jac_norm`, else the estimate `jac_norm_est`). Paper: CIFAR-10. The factor is\n"
      "‖J‖(–)/‖J‖(WD); the paper's claim: it is much larger with K-FAC-G than with SGD.\n\n"
      "| Dataset | Network | Optimizer | – ours | – paper | WD ours | WD paper | factor ours | factor paper |\n"
      "|---|---|---|---|---|---|---|---|---|\n";
  auto jac = [](const RunRecord& r) {
    const double j = r.last("jac_norm");
    return std::isnan(j) ? r.last("jac_norm_est") : j;
  };
  using Key = std::tuple<std::string, std::string, std::string, std::string>;  // data, network, optimizer, group
  std::vector<Key> rows;
  for (const auto& p : paper::kTable2) rows.push_back({"CIFAR-10", p.network, p.optimizer, ""});
  std::set<Key> seen(rows.begin(), rows.end());
  for (const auto& r : runs)
    if (!r.bn() && (r.optimizer() == "sgd" || r.optimizer() == "kfac-g") && !std::isnan(jac(r))) {
      const bool paper_setting = r.dataset_label() == "CIFAR-10" && (r.network_label() == "VGG16" || r.network_label() == "ResNet32");
      Key k{r.dataset_label(), r.network_label(), r.optimizer(), paper_setting ? "" : r.group};
      if (seen.insert(k).second) rows.push_back(k);
    }
  bool any = false;
  for (const auto& [ds, net0, opt, group] : rows) {
    const std::string& net = net0;
    double pn = kNaN, pw = kNaN;
    for (const auto& p : paper::kTable2)
      if (ds == "CIFAR-10" && net == p.network && opt == p.optimizer) pn = p.none, pw = p.wd;
    auto m = [&](bool wd) {
      return mean_of(
          runs,
          [&](const RunRecord& r) {
            return !r.bn() && r.dataset_label() == ds && r.network_label() == net && r.optimizer() == opt &&
                   wd_column(r, wd) && (group.empty() || r.group == group);
          },
          jac);
    };
    const auto [on, nn] = m(false);
    const auto [ow, nw] = m(true);
    any |= nn + nw > 0;
    md += fmt::format("| {} | {}{} | {} | {} | {} | {} | {} | {} | {} |\n", ds, net,
                      group.empty() ? "" : " [" + group + "]", opt == "sgd" ? "SGD" : "K-FAC-G",
                      fmt_sci(on), fmt_sci(pn), fmt_sci(ow), fmt_sci(pw), fmt_num(on / ow, 1), fmt_num(pn / pw, 1));
  }
  if (!any)
    md += "\n*No run logged `jac_norm` (or `jac_norm_est`): train with the Jacobian metric selected "
          "(`--metrics`) to fill the “ours” columns.*\n";
  return md;
}

std::string table3_md(const std::vector<RunRecord>& runs) {
  using Key = std::tuple<std::string, std::string, std::string>;
  std::vector<Key> rows;
  for (const auto& p : paper::kTable3) rows.push_back({p.dataset, p.network, p.optimizer});
  std::set<Key> seen(rows.begin(), rows.end());
  std::set<int> ours_batches;
  for (const auto& r : runs) {
    const int b = int(r.cfg_num("batch_size", 0));
    if (r.done.is_null() || b == 128 || !r.bn()) continue;
    ours_batches.insert(b);
    Key k{r.dataset_label(), r.network_label(), r.optimizer()};
    if (seen.insert(k).second) rows.push_back(k);
  }
  std::vector<int> batches(paper::kBatches.begin(), paper::kBatches.end());
  for (int b : ours_batches)
    if (b != 640 && b != 2000) batches.push_back(b);
  std::string md =
      "Test accuracy (%) with BN (and, for the paper's rows, augmentation) by batch size; a cell reads\n"
      "*ours / paper (difference)*. The paper tuned lr and β per cell on held-out validation.\n\n"
      "| Dataset | Network | Method |";
  std::string sep = "|---|---|---|";
  for (int b : batches) {
    md += fmt::format(" BS{} – | BS{} WD |", b, b);
    sep += "---|---|";
  }
  md += "\n" + sep + "\n";
  for (const auto& [ds, net, opt] : rows) {
    const paper::Table3Row* pr = nullptr;
    for (const auto& p : paper::kTable3)
      if (ds == p.dataset && net == p.network && opt == p.optimizer) pr = &p;
    md += fmt::format("| {} | {} | {} |", ds, net, opt);
    for (std::size_t bi = 0; bi < batches.size(); ++bi)
      for (int wd = 0; wd < 2; ++wd) {
        const auto [v, n] = mean_of(
            runs,
            [&](const RunRecord& r) {
              return r.bn() && int(r.cfg_num("batch_size", 0)) == batches[bi] && r.dataset_label() == ds &&
                     r.network_label() == net && r.optimizer() == opt && wd_column(r, wd) &&
                     (pr == nullptr || r.augment());
            },
            [](const RunRecord& r) { return 100 * r.test_acc(); });
        md += " " + cell(v, n, pr && bi < 3 ? pr->acc[bi * 2 + std::size_t(wd)] : kNaN) + " |";
      }
    md += "\n";
  }
  return md;
}

std::string runs_table_md(const std::vector<RunRecord>& runs) {
  std::string md =
      "| group | run | data | network | B | D | optimizer | batch | reg | lr | β | epochs | test acc % | val acc % | "
      "train loss | gen gap | time s |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n";
  for (const auto& r : runs) {
    double secs = 0;
    for (double s : r.series("epoch_seconds"))
      if (!std::isnan(s)) secs += s;
    double gap = r.last("gen_gap");
    if (std::isnan(gap)) gap = r.last("test_loss") - r.last("train_loss");
    md += fmt::format("| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {}{} | {} | {} | {} | {} | {} |\n",
                      r.group, r.name, r.dataset_label(), r.network_label(), check(r.bn()), check(r.augment()),
                      r.optimizer(), r.cfg_num("batch_size", 0), r.reg_class(), fmt_sci(r.cfg_num("lr")),
                      fmt_sci(r.cfg_num("weight_decay")), r.epochs(), r.done.is_null() ? " (unfinished)" : "",
                      fmt_num(100 * r.test_acc()), fmt_num(100 * r.last("val_acc")), fmt_sci(r.last("train_loss")),
                      fmt_sci(gap), fmt_num(secs, 0));
  }
  return md;
}

}  // namespace wdlab::app

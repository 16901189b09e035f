#include "apps/report.hpp"

#include <sys/wait.h>

#include <cstdlib>
#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "apps/report_accuracy.hpp"
#include "apps/report_runs.hpp"
#include "apps/report_signatures.hpp"
#include "apps/report_tables.hpp"
#include "common/errors.hpp"
#include "common/io/atomic_file.hpp"
#include "common/io/json_config.hpp"

namespace fs = std::filesystem;

namespace wdlab::app {

void ReportOptions::validate() const {
  if (inputs.empty()) throw UsageError("RUN_DIRS", "give at least one run, sweep or suite directory");
  if (out.empty()) throw UsageError("--out", "is required");
}

namespace {

std::string quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

fs::path default_plot_script() {
  if (fs::exists("scripts/plot_report.py")) return "scripts/plot_report.py";
#ifdef WDLAB_SOURCE_DIR
  return fs::path(WDLAB_SOURCE_DIR) / "scripts" / "plot_report.py";
#else
  return "scripts/plot_report.py";
#endif
}

/// The runs as columns, for scripts/plot_report.py.
nlohmann::ordered_json plot_data(const std::vector<RunRecord>& runs, const nlohmann::ordered_json& signatures) {
  nlohmann::ordered_json j;
  j["runs"] = nlohmann::ordered_json::array();
  for (const auto& r : runs) {
    nlohmann::ordered_json e;
    e["group"] = r.group;
    e["name"] = r.name;
    e["dataset"] = r.dataset_label();
    e["network"] = r.network_label();
    e["bn"] = r.bn();
    e["optimizer"] = r.optimizer();
    e["reg"] = r.reg_class();
    e["family"] = r.family();
    e["seed"] = r.seed();
    e["setting"] = r.setting();
    e["lr"] = r.cfg_num("lr");
    e["weight_decay"] = r.cfg_num("weight_decay");
    e["batch_size"] = r.cfg_num("batch_size");
    e["finished"] = !r.done.is_null();
    std::vector<std::string> keys;
    std::set<std::string> seen;
    for (const auto& row : r.rows)
      for (const auto& [k, v] : row.items())
        if (seen.insert(k).second) keys.push_back(k);
    nlohmann::ordered_json cols;
    for (const auto& k : keys) {
      nlohmann::json col = nlohmann::json::array();
      for (double v : r.series(k)) col.push_back(std::isnan(v) ? nlohmann::json() : nlohmann::json(v));
      cols[k] = col;
    }
    e["metrics"] = cols;
    j["runs"].push_back(e);
  }
  j["signatures"] = signatures;
  return j;
}

/// The scale of these runs against the paper's, said before any number.
constexpr const char* kScaleNote =
    "**Scale.** The paper trains VGG16 and ResNet32 on CIFAR-10/100 for 200 epochs on GPUs; the laptop and demo "
    "suites train small Fashion-MNIST networks (MLP, BN-MLP, a small convnet) for minutes on a CPU. The signatures "
    "below test the paper's mechanisms (trajectories of norms, effective learning rates, effective damping, "
    "curvature traces) at this smaller scale, each against a rule fixed before the runs; each row names the "
    "paper figure or table it mirrors. Accuracy differences at this scale are within seed noise and are not "
    "the headline.\n";

/// Notes on metric families no run logged.
std::string missing_metrics_md(const std::vector<RunRecord>& runs) {
  const std::vector<std::pair<std::string, std::string>> families = {
      {"elr.", "effective learning rate (mechanism I, Fig. 3)"},
      {"jac_norm", "Jacobian norm ‖J_x‖²_F (Table 2, Fig. 5)"},
      {"kfac_gn_norm", "K-FAC Gauss-Newton norm (Fig. 5)"},
      {"fisher_trace.", "Fisher trace norm of a layer (Fig. 7)"},
      {"gn_trace.", "Gauss-Newton trace norm of a layer (Fig. 7)"},
      {"gen_gap", "generalization gap (Fig. 5)"},
      {"damping_eff.", "effective damping λ‖θ_l‖² (mechanism III)"},
      {"rot_pred.", "angular update and its equilibrium prediction (mechanism I, rotation group)"}};
  std::string md;
  for (const auto& [prefix, what] : families) {
    bool found = false;
    for (const auto& r : runs) found |= !r.first_key(prefix).empty();
    if (!found)
      md += fmt::format("- No run logged `{}*` ({}): the tables and figures that need it are left out or empty. "
                        "Select it with the training metrics option to measure it.\n",
                        prefix, what);
  }
  return md;
}

}  // namespace

int run_report(const ReportOptions& o) {
  o.validate();
  const auto runs = load_runs(o.inputs);
  if (runs.empty()) {
    std::string ins;
    for (const auto& i : o.inputs) ins += (ins.empty() ? "" : ", ") + i.string();
    throw DataError(ins, "no run directory (config.json) found here or below");
  }
  fs::create_directories(o.out);
  auto sig = measure_signatures(runs);
  const AccuracyTable acc = accuracy_table(runs);
  sig.json["accuracy"] = acc.json;
  io::write_file_atomic(o.out / "signatures.json", sig.json.dump(2) + "\n");
  io::write_file_atomic(o.out / "report-data.json", plot_data(runs, sig.json).dump() + "\n");

  std::string figures_md;
  if (o.figures) {
    const fs::path script = o.plot_script.empty() ? default_plot_script() : o.plot_script;
    const fs::path fig_dir = o.out / "figures";
    fs::create_directories(fig_dir);
    const std::string cmd = fmt::format("{} {} --data {} --out {} > {} 2>&1", quote(o.python.string()),
                                        quote(script.string()), quote((o.out / "report-data.json").string()),
                                        quote(fig_dir.string()), quote((fig_dir / "plot.log").string()));
    const int st = std::system(cmd.c_str());
    const int rc = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    if (rc == 0 && fs::exists(fig_dir / "figures.json")) {
      const auto figs = io::read_json_file(fig_dir / "figures.json");
      for (const auto& f : figs["figures"])
        figures_md += fmt::format("**{}** ({})\n\n![{}](figures/{})\n\n", f.value("title", ""),
                                  f.value("caption", ""), f.value("title", ""), f.value("png", ""));
      for (const auto& n : figs.value("notes", nlohmann::json::array()))
        figures_md += "- " + n.get<std::string>() + "\n";
    } else {
      figures_md = fmt::format(
          "*Figures not drawn: `{} {}` exited with {} (see figures/plot.log; it needs Debian's "
          "python3-matplotlib). The tables above do not depend on them.*\n",
          o.python.string(), script.string(), rc);
      fmt::print(stderr, "wdlab report: figures not drawn ({} exited with {}; log {})\n", script.string(), rc,
                 (fig_dir / "plot.log").string());
    }
  }

  std::string md = "# " + o.title + "\n\n";
  std::set<std::string> groups;
  std::size_t finished = 0;
  for (const auto& r : runs) groups.insert(r.group), finished += !r.done.is_null();
  md += fmt::format("{} runs ({} finished) in {} groups, read from:", runs.size(), finished, groups.size());
  for (const auto& i : o.inputs) md += " `" + i.string() + "`";
  md += ".\n";
  for (const auto& i : o.inputs)
    if (fs::exists(i / "reproduce.json")) {
      const auto rep = io::read_json_file(i / "reproduce.json");
      md += fmt::format("Suite `{}`: {} runs, wall time of the last `wdlab reproduce` {:.1f} min (-j {}; runs done "
                        "before it are not counted).\n",
                        rep.value("suite", ""), rep.value("runs", 0), rep.value("seconds", 0.0) / 60, rep.value("jobs", 1));
    }
  md += "\n" + std::string(kScaleNote);
  const std::string missing = missing_metrics_md(runs);
  if (!missing.empty()) md += "\n" + missing;
  md += "\n## Mechanism signatures\n\n" + sig.markdown;
  md += "\n## Test accuracy over seeds (informational)\n\n" + acc.markdown;
  md += "\n## Table 1: test accuracy\n\n" + table1_md(runs);
  md += "\n## Table 2: Jacobian norm\n\n" + table2_md(runs);
  md += "\n## Table 3: batch size\n\n" + table3_md(runs);
  if (o.figures) md += "\n## Figures\n\n" + figures_md;
  md += "\n## All runs\n\n"
        "Final epoch. reg: none | wd (decoupled decay on all layers; SGD's L2 counts as WD, as in the official "
        "code) | l2 | wd-conv / wd-fc / wd-list (scope) | wn-conv. gen gap: the `gen_gap` metric where logged, "
        "else test loss − the epoch's running train loss.\n\n" +
        runs_table_md(runs);
  io::write_file_atomic(o.out / "report.md", md);
  fmt::print("wdlab report: {} runs -> {}\n", runs.size(), (o.out / "report.md").string());
  return 0;
}

}  // namespace wdlab::app

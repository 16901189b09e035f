// `wdlab reproduce`: runs a suite of experiments (configs/*/suite.json), skipping finished runs,
// then writes the report over everything the suite produced.
#include <chrono>
#include <ctime>
#include <filesystem>
#include <set>

#include <boost/program_options.hpp>
#include <fmt/format.h>

#include "apps/child_runs.hpp"
#include "apps/command.hpp"
#include "apps/report.hpp"
#include "apps/suite.hpp"
#include "apps/sweep_grid.hpp"
#include "apps/sweep_run.hpp"
#include "common/errors.hpp"
#include "common/io/atomic_file.hpp"

namespace po = boost::program_options;
namespace fs = std::filesystem;

namespace wdlab::app {

namespace {

/// configs/ of the working directory, else of the source tree this binary was built from.
fs::path default_configs_dir() {
  if (fs::exists("configs/laptop")) return "configs";
#ifdef WDLAB_SOURCE_DIR
  return fs::path(WDLAB_SOURCE_DIR) / "configs";
#else
  return "configs";
#endif
}

fs::path suite_file(const std::string& suite, const fs::path& configs) {
  if (suite == "laptop") return configs / "laptop" / "suite.json";
  if (suite == "demo") return configs / "laptop" / "demo.json";
  if (suite == "paper") return configs / "paper" / "suite.json";
  if (fs::exists(suite)) return suite;
  throw UsageError("--suite", fmt::format("expected laptop, demo, paper or a suite file, got '{}'", suite));
}

}  // namespace

int cmd_reproduce(const Args& args) {
  std::string suite_name, only, out, configs;
  std::vector<std::string> extra_sets;
  int jobs = 1;
  bool dry_run = false, no_report = false;
  po::options_description desc(
      "wdlab reproduce --suite laptop|demo|paper|FILE [--only NAME[,NAME]] [--out DIR] [-j N] [--set k=v]\n\n"
      "Runs the experiments of a suite (configs/laptop/suite.json, configs/laptop/demo.json,\n"
      "configs/paper/suite.json): each run as a child `wdlab train` into DIR/<experiment>/<run>,\n"
      "each grid as `wdlab sweep` into DIR/<experiment>/<grid>; a run with \"seeds\": [..] runs once\n"
      "per seed into DIR/<experiment>/<run>-s<seed> (apps/suite.hpp); finished runs are skipped and\n"
      "interrupted ones resumed. Then writes `wdlab report DIR --out DIR/report`. The wall time\n"
      "goes to DIR/reproduce.json. Exit: 0; 2 bad suite; 4 some run failed (the report is still\n"
      "written); 130/143 interrupted (run the same command again to continue).\n\noptions");
  desc.add_options()
      ("help,h", "this text")
      ("suite", po::value(&suite_name), "laptop | demo | paper | a suite file")
      ("only", po::value(&only), "comma-separated experiment names (default: all)")
      ("out,o", po::value(&out), "output directory (default runs/<suite name>)")
      ("jobs,j", po::value(&jobs)->default_value(1), "training runs at once")
      ("set", po::value(&extra_sets)->composing(), "an override for every run (not the grids), e.g. --set backend=cuda")
      ("configs", po::value(&configs), "the configs/ directory holding the suites (default: ./configs, else the source tree's)")
      ("dry-run", po::bool_switch(&dry_run), "list the runs and grids, validate their configs, run nothing")
      ("no-report", po::bool_switch(&no_report), "skip the report");
  if (!parse_options(desc, args, [&] {
        if (suite_name.empty()) throw UsageError("--suite", "is required");
        if (jobs < 1) throw UsageError("-j", "must be >= 1");
      }))
    return 0;
  const fs::path file = suite_file(suite_name, configs.empty() ? default_configs_dir() : fs::path(configs));
  const Suite suite = read_suite(file);
  std::set<std::string> selected;
  for (std::size_t p = 0; !only.empty() && p <= only.size();) {
    const std::size_t q = std::min(only.find(',', p), only.size());
    selected.insert(only.substr(p, q - p));
    p = q + 1;
  }
  for (const auto& s : selected) {
    bool found = false;
    for (const auto& e : suite.experiments) found |= e.name == s;
    if (!found) {
      std::string names;
      for (const auto& e : suite.experiments) names += (names.empty() ? "" : ", ") + e.name;
      throw UsageError("--only", fmt::format("no experiment '{}' in {} (it has: {})", s, file.string(), names));
    }
  }
  const fs::path out_dir = out.empty() ? fs::path("runs") / suite.name : fs::path(out);
  const std::string tag = "reproduce " + suite.name;

  std::vector<ChildJob> jobs_list;
  std::vector<std::pair<fs::path, fs::path>> grids;  // grid file, output dir
  std::size_t skipped = 0, total = 0;
  for (const auto& e : suite.experiments) {
    if (!selected.empty() && !selected.count(e.name)) continue;
    const fs::path exp_dir = out_dir / e.name;
    for (const auto& r : e.runs) {
      ++total;
      const nlohmann::json set = substitute(r.set, fs::absolute(exp_dir).string());
      // Resolve now, so a bad config fails before anything runs.
      resolve_with_overrides(r.config, set, file.string() + ": " + e.name + "/" + r.name);
      const fs::path dir = exp_dir / r.name;
      if (dry_run) {
        fmt::print("{}/{}: {} {}\n", e.name, r.name, r.config.string(), set.dump());
        continue;
      }
      ChildJob j;
      j.id = e.name + "/" + r.name;
      j.label = r.config.filename().string();
      j.args = {"train", "--config", r.config.string(), "--out", dir.string()};
      for (const auto& [k, v] : set.items()) {
        j.args.push_back("--set");
        j.args.push_back(k + "=" + v.dump());
      }
      for (const auto& x : extra_sets) {
        j.args.push_back("--set");
        j.args.push_back(x);
      }
      for (const auto& a : r.after) j.after.push_back(e.name + "/" + a);
      j.log = exp_dir / "logs" / (r.name + ".log");
      if (fs::exists(dir / "DONE")) {
        ++skipped;
        j.args.clear();  // finished: the scheduler still knows it, for runs that wait for it
      } else if (fs::exists(dir / "config.json")) {
        j.args.push_back("--resume");
      }
      jobs_list.push_back(std::move(j));
    }
    for (const auto& g : e.grids) {
      grids.push_back({g, exp_dir / read_grid(g).name});
      if (dry_run) fmt::print("{}: grid {} ({} points)\n", e.name, g.string(), expand_grid(read_grid(g)).size());
    }
  }
  if (dry_run) return 0;
  fmt::print(stderr, "{}: {} runs ({} done before), {} grids, -j {}, output {}\n", tag, total, skipped, grids.size(),
             jobs, out_dir.string());
  const auto t0 = std::chrono::steady_clock::now();
  std::size_t n_done = 0, n_failed = 0;
  run_child_jobs(jobs_list, jobs, tag, [&](std::size_t i, const JobResult& r) {
    ++n_done;
    const auto& j = jobs_list[i];
    if (r.outcome != JobOutcome::ok) ++n_failed;
    if (j.args.empty()) return;  // done before
    fmt::print(stderr, "{}: [{}/{}] {} {} in {:.1f} s (log {})\n", tag, n_done, jobs_list.size(), j.id,
               r.outcome == JobOutcome::ok ? "done"
               : r.outcome == JobOutcome::skipped_dependency ? "skipped (a run it waits for failed)"
                                                             : fmt::format("FAILED (exit {})", r.exit_code),
               r.seconds, j.log.string());
  });
  int rc = 0;
  for (const auto& [g, dir] : grids) {
    SweepOptions so;
    so.grid = g;
    so.out = dir;
    so.jobs = jobs;
    try {
      if (run_sweep(so) != 0) rc = int(ExitCode::numeric);
    } catch (const NumericError& e) {
      fmt::print(stderr, "{}: {}\n", tag, e.what());
      rc = int(ExitCode::numeric);
    }
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  nlohmann::ordered_json rec;
  rec["suite"] = suite.name;
  rec["suite_file"] = fs::absolute(file).string();
  rec["only"] = only;
  rec["jobs"] = jobs;
  rec["finished_at"] = std::time(nullptr);
  rec["seconds"] = seconds;
  rec["runs"] = total;
  rec["runs_done_before"] = skipped;
  rec["runs_failed"] = n_failed;
  fs::create_directories(out_dir);
  io::write_file_atomic(out_dir / "reproduce.json", rec.dump(2) + "\n");
  fmt::print("{}: {} runs ({} failed), {} grids in {:.1f} s ({:.1f} min)\n", tag, total, n_failed, grids.size(),
             seconds, seconds / 60);
  if (n_failed) rc = int(ExitCode::numeric);
  if (!no_report) {
    ReportOptions ro;
    ro.inputs = {out_dir};
    ro.out = out_dir / "report";
    ro.title = fmt::format("wdlab report: suite '{}'", suite.name);
    const int r = run_report(ro);
    if (rc == 0) rc = r;
  }
  return rc;
}

}  // namespace wdlab::app

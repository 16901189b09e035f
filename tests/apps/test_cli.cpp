// The wdlab command line as a user meets it: outputs, exit codes, errors.
#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "run_command.hpp"

using wdlab::test::run_wdlab;

TEST_CASE("wdlab theory --format json: an array of rows with the documented keys, exit 0") {
  const auto r = run_wdlab("theory --format json");
  REQUIRE(r.rc == 0);
  const auto rows = nlohmann::json::parse(r.out);
  REQUIRE(rows.is_array());
  CHECK(rows.size() > 100);
  int controls = 0;
  for (const auto& row : rows) {
    for (const char* key : {"id", "paper_ref", "lhs", "rhs", "rel_err", "tol", "tol_basis", "expect",
                            "outcome", "pass", "reason"})
      CHECK(row.contains(key));
    CHECK(row["pass"] == (row["expect"] == row["outcome"]));
    CHECK(row["pass"] == true);
    controls += row["expect"] == "fails";
  }
  CHECK(controls >= 3);
}

TEST_CASE("wdlab theory on the issue's tiny network: exit 0, JSON parses, no null, skipped rows say why") {
  const auto r = run_wdlab("theory --seeds 3 --depths 1,3,6 --widths 2 --format json");
  INFO(r.err);
  CHECK(r.rc == 0);
  const auto rows = nlohmann::json::parse(r.out);
  REQUIRE(rows.is_array());
  int skipped = 0;
  for (const auto& row : rows) {
    for (const char* key : {"lhs", "rhs", "rel_err", "tol"}) CHECK(row[key].is_number());
    if (row["outcome"] == "skipped") {
      ++skipped;
      CHECK(row["reason"].get<std::string>().size() > 20);
    } else {
      CHECK(row["pass"] == true);
    }
  }
  CHECK(20 * skipped < int(rows.size()));
  CHECK(r.err.find("skipped") != std::string::npos);
}

TEST_CASE("wdlab theory --random 20: every random network passes, --list has the ext ids") {
  const auto r = run_wdlab("theory --random 20 --seed 3");
  INFO(r.out, r.err);
  CHECK(r.rc == 0);
  CHECK(r.out.find("20 random networks (seed 3): 20 passed, 0 failed") != std::string::npos);
  CHECK(r.out.find("wdlab theory --seeds ") != std::string::npos);  // each network's command
  const auto l = run_wdlab("theory --list");
  for (const char* id : {"ext.exp_lr_equivalence", "ext.angular_equilibrium", "ext.grad_weight_ratio",
                         "ext.exp_lr_non_invariant", "ext.angular_other_form", "ext.grad_ratio_no_wd"})
    CHECK(l.out.find(id) != std::string::npos);
}

namespace {

/// The value after `--name ` in a printed `wdlab theory` command line (-1 if absent).
int option_value(const std::string& cmd, const std::string& name) {
  const std::size_t at = cmd.find("--" + name + " ");
  return at == std::string::npos ? -1 : std::stoi(cmd.substr(at + name.size() + 3));
}

}  // namespace

TEST_CASE("wdlab theory --random with an injected failure: the shrunk network and its command reproduce it") {
  // The hook fails lemma1.jx on every network with >= 3 hidden layers of width >= 4, so the
  // smallest failing network is depth 3, width 4 and the smallest input dim, classes and batch
  // (1, 2, 2), with the failing network's seed, whatever network of the stream fails first.
  const std::string fault = "WDLAB_FAULT_THEORY_FAIL=lemma1.jx@3x4";
  const auto r = run_wdlab("theory --random 4 --seed 2 --only lemma1.jx", fault);
  INFO(r.out, r.err);
  CHECK(r.rc == 1);
  // Every network line: FAILED exactly when the hook applies to its depth and width.
  std::string first_failing;
  int networks = 0;
  std::istringstream in(r.out);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("network ", 0) != 0) continue;
    ++networks;
    const bool failed = line.find("FAILED") != std::string::npos;
    CHECK(failed == (option_value(line, "depths") >= 3 && option_value(line, "widths") >= 4));
    if (failed && first_failing.empty()) first_failing = line;
  }
  CHECK(networks == 4);
  REQUIRE_FALSE(first_failing.empty());
  // The first failing network is larger than the smallest one, so there was shrinking to do.
  CHECK(option_value(first_failing, "depths") + option_value(first_failing, "widths") +
            option_value(first_failing, "batch") > 3 + 4 + 2);
  const int seed = option_value(first_failing, "seeds");
  const std::string expected = "wdlab theory --seeds " + std::to_string(seed) +
                               " --depths 3 --widths 4 --input-dim 1 --classes 2 --batch 2 --only lemma1.jx";
  const std::string prefix = "smallest failing network found by shrinking: ";
  const std::size_t at = r.err.find(prefix);
  REQUIRE(at != std::string::npos);
  const std::string printed = r.err.substr(at + prefix.size(), r.err.find('\n', at) - at - prefix.size());
  CHECK(printed == expected);
  // The printed command, run (its "wdlab " replaced by the binary), fails again: exit 1 and the
  // row marked UNEXPECTED; one layer fewer or one unit narrower passes, and without the hook the
  // shrunk network passes (the injected fault, nothing else, made it fail).
  const std::string args = printed.substr(std::string("wdlab ").size());
  const auto again = run_wdlab(args, fault);
  CHECK(again.rc == 1);
  CHECK(again.out.find("UNEXPECTED") != std::string::npos);
  const std::string tail = " --input-dim 1 --classes 2 --batch 2 --only lemma1.jx";
  const std::string s = "theory --seeds " + std::to_string(seed);
  CHECK(run_wdlab(s + " --depths 2 --widths 4" + tail, fault).rc == 0);
  CHECK(run_wdlab(s + " --depths 3 --widths 3" + tail, fault).rc == 0);
  CHECK(run_wdlab(args).rc == 0);
}

TEST_CASE("wdlab theory table: one row per check and a summary line") {
  const auto r = run_wdlab("theory --only lemma1.jx --depths 1,2");
  CHECK(r.rc == 0);
  int rows = 0;
  std::istringstream in(r.out);
  for (std::string line; std::getline(in, line);) rows += line.rfind("lemma1.jx", 0) == 0;
  CHECK(rows == 4);  // 2 depths × {linear, relu}
  CHECK(r.out.find("4 rows") != std::string::npos);
  CHECK(r.out.find("0 unexpected") != std::string::npos);
}

TEST_CASE("bad options and values: one-line error naming the option, then the usage, exit 2") {
  for (const char* args : {"theory --depths -1", "theory --widths 0", "theory --depths 1,x",
                           "theory --bogus", "theory --format xml", "theory --batch",
                           "theory --random -1", "theory --random x", "theory --seed -3"}) {
    const auto r = run_wdlab(args);
    INFO(args, "\nstderr: ", r.err);
    CHECK(r.rc == 2);
    CHECK(r.err.find("wdlab theory: ") == 0);
    CHECK(r.err.find("options:") != std::string::npos);  // the usage follows
    CHECK(r.out.empty());
  }
  const auto r = run_wdlab("theory --depths -1");
  CHECK(r.err.find("--depths") != std::string::npos);
  const auto u = run_wdlab("frobnicate");
  CHECK(u.rc == 2);
  CHECK(u.err.find("unknown command 'frobnicate'") != std::string::npos);
}

TEST_CASE("wdlab info: version, build, Eigen and the GPU's state, exit 0 without a GPU") {
  const auto r = run_wdlab("info");
  CHECK(r.rc == 0);
  for (const char* s : {"wdlab ", "build type:", "compiler:", "eigen:", "cuda backend:", "gpu"})
    CHECK(r.out.find(s) != std::string::npos);
  const bool gpu_line_ok = r.out.find("no usable CUDA device") != std::string::npos ||
                           r.out.find("gpu 0:") != std::string::npos;
  CHECK(gpu_line_ok);
}

TEST_CASE("--help prints the usage and exits 0") {
  const auto r = run_wdlab("theory --help");
  CHECK(r.rc == 0);
  CHECK(r.out.find("--depths") != std::string::npos);
  const auto top = run_wdlab("--help");
  CHECK(top.rc == 0);
  CHECK(top.out.find("theory") != std::string::npos);
}

TEST_CASE("wdlab --help lists the commands, each listed one runs its --help, an unknown one gets the list") {
  const auto top = run_wdlab("--help");
  REQUIRE(top.rc == 0);
  // The lines of the "commands:" section: two spaces, the name, the summary.
  const auto from = top.out.find("commands:\n");
  REQUIRE(from != std::string::npos);
  std::istringstream lines(top.out.substr(from + 10));
  std::vector<std::string> names;
  for (std::string line; std::getline(lines, line) && !line.empty();) {
    REQUIRE(line.rfind("  ", 0) == 0);
    names.push_back(line.substr(2, line.find(' ', 2) - 2));
  }
  CHECK(names.size() >= 10);
  for (const auto& n : names) {
    const auto r = run_wdlab(n + " --help");
    INFO(n, "\n", r.err);
    CHECK(r.rc == 0);
    CHECK(r.out.find("wdlab " + n) != std::string::npos);  // its own usage, not the top-level one
  }
  const auto u = run_wdlab("frobnicate");
  CHECK(u.rc == 2);
  for (const auto& n : names) CHECK(u.err.find("\n  " + n + " ") != std::string::npos);
  // The summaries say which backends a command runs on.
  CHECK(top.out.find("CPU reference backend") == std::string::npos);
  CHECK(top.out.find("--backend reference|cuda") != std::string::npos);
}

TEST_CASE("every shipped config parses and builds its network (--dry-run)") {
  namespace fs = std::filesystem;
  int n = 0;
  for (const auto& e : fs::recursive_directory_iterator(fs::path(WDLAB_SOURCE_DIR) / "configs")) {
    if (e.path().extension() != ".json") continue;
    // Suites (suite.json, demo.json) and sweep grids (grids/) are not run configs; test_sweep
    // resolves them.
    const auto name = e.path().filename(), dir = e.path().parent_path();
    if (name == "suite.json" || name == "demo.json" || dir.filename() == "grids" ||
        dir.parent_path().filename() == "grids")
      continue;
    const auto r = run_wdlab("train --dry-run --config " + e.path().string());
    INFO(e.path().string(), "\n", r.err);
    CHECK(r.rc == 0);
    CHECK(r.out.find("trainable parameters") != std::string::npos);
    ++n;
  }
  CHECK(n >= 48);
}

// The wdlab command line as a user meets it: outputs, exit codes, errors.
#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <filesystem>

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

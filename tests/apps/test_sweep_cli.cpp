// `wdlab sweep`, `wdlab report` and `wdlab reproduce` end to end on the tiny grid of sweep_support.hpp
// (2x2, one learning rate learns nothing, so the best point by validation is known: lr 0.05).
#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <regex>
#include <set>

#include "sweep_support.hpp"

namespace fs = std::filesystem;
using wdlab::test::run_wdlab;
using wdlab::test::slurp;
using wdlab::test::have_fashion_mnist;
using wdlab::test::count;
using wdlab::test::ids_of;
using wdlab::test::manifest;

namespace {

fs::path fresh_dir(const std::string& name) {
  const fs::path d = wdlab::test::fresh_dir("wdlab_sweep", name);
  fs::create_directories(d);
  return d;
}

fs::path write_grid(const fs::path& dir) { return wdlab::test::write_tiny_grid(dir); }

}  // namespace

TEST_CASE("sweep: stable ids, interrupted runs resume, done runs are skipped, the best by validation is retrained") {
  if (!have_fashion_mnist()) std::exit(77);
  const fs::path dir = fresh_dir("grid");
  const fs::path grid = write_grid(dir);
  const fs::path out = dir / "out";
  const std::string common = "sweep --grid " + grid.string() + " --out " + out.string();

  // Expansion: 4 points, the same ids every time, nothing written.
  const auto d1 = run_wdlab(common + " --dry-run");
  INFO(d1.err);
  REQUIRE(d1.rc == 0);
  const auto ids = ids_of(d1.out);
  REQUIRE(ids.size() == 4);
  CHECK(std::set<std::string>(ids.begin(), ids.end()).size() == 4);
  CHECK(ids_of(run_wdlab(common + " --dry-run").out) == ids);
  CHECK_FALSE(fs::exists(out));

  // Every child is stopped by SIGTERM inside its epoch: the sweep stops (143), resumable.
  const auto r1 = run_wdlab(common + " -j 2", "WDLAB_FAULT_SIGTERM_AT=3");
  INFO(r1.err);
  CHECK(r1.rc == 143);
  auto m = manifest(out);
  REQUIRE(m["points"].size() == 4);
  for (const auto& p : m["points"]) {
    CHECK(p["status"] == "interrupted");
    CHECK(fs::exists(out / p["dir"].get<std::string>() / "config.json"));
    CHECK_FALSE(fs::exists(out / p["dir"].get<std::string>() / "DONE"));
  }

  // Second invocation: every point resumes and finishes; the best is lr 0.05; the final run trains
  // on train+validation.
  const auto r2 = run_wdlab(common + " -j 2");
  INFO(r2.err);
  REQUIRE(r2.rc == 0);
  CHECK(count(r2.err, ": start ") == 5);  // the 4 points, then the final run
  CHECK(count(r2.err, ": start final-") == 1);
  m = manifest(out);
  for (const auto& p : m["points"]) {
    CHECK(p["status"] == "done");
    const std::string log = slurp(out / "logs" / (p["id"].get<std::string>() + ".log"));
    CHECK(log.find("resum") != std::string::npos);  // the trainer says it resumed
  }
  REQUIRE(m.contains("best"));
  CHECK(m["best"]["overrides"]["lr"].get<double>() == 0.05);
  for (const auto& p : m["points"])
    if (p["overrides"]["lr"].get<double>() < 1e-3)
      CHECK(p["val_acc"].get<double>() < m["best"]["val_acc"].get<double>());
  REQUIRE(m.contains("final"));
  const fs::path fin = out / m["final"]["dir"].get<std::string>();
  CHECK(fs::exists(fin / "DONE"));
  const auto fcfg = nlohmann::json::parse(slurp(fin / "config.json"));
  CHECK(fcfg["validation"] == 0);
  CHECK(fcfg["lr"].get<double>() == 0.05);
  CHECK(nlohmann::json::parse(slurp(fin / "meta.json"))["train_examples"] == 320);  // train + validation

  // Third invocation: nothing to run.
  const auto r3 = run_wdlab(common + " -j 2");
  INFO(r3.err);
  CHECK(r3.rc == 0);
  CHECK(count(r3.err, "(done)") == 4);
  CHECK(count(r3.err, ": start ") == 0);

  // A Slurm job array instead of running.
  const auto r4 = run_wdlab(common + " --emit-slurm " + (dir / "sweep.sbatch").string());
  INFO(r4.err);
  REQUIRE(r4.rc == 0);
  const std::string script = slurp(dir / "sweep.sbatch");
  CHECK(script.find("#SBATCH --array=0-3") != std::string::npos);
  for (const auto& id : ids) CHECK(script.find(id) != std::string::npos);
  CHECK(script.find("train --config") != std::string::npos);

  // The report over the points: tables, signatures, a note for the metrics nobody logged.
  const auto rep = run_wdlab("report " + (out / "runs").string() + " --out " + (dir / "report").string() +
                             " --no-figures");
  INFO(rep.err);
  REQUIRE(rep.rc == 0);
  const std::string md = slurp(dir / "report" / "report.md");
  for (const char* s : {"## Mechanism signatures", "## Table 1", "## Table 2", "## Table 3", "| F-MNIST | MLP 1x16 | ✗ | ✗ | sgd | 32 |",
                        "| CIFAR-10 | VGG16 | ✗ | ✗ |", "83.20", "No run logged `jac_norm", "## All runs"})
  {
    INFO("expected in report.md: ", std::string(s));
    CHECK(md.find(s) != std::string::npos);
  }
  fs::remove_all(dir);
}

TEST_CASE("sweep and report reject bad input with exit 2 or 3") {
  const fs::path dir = fresh_dir("bad");
  std::ofstream(dir / "g.json") << R"({"base": "nope.json", "axes": {"lr": [0.1]}, "typo": 1})";
  auto r = run_wdlab("sweep --grid " + (dir / "g.json").string() + " --dry-run");
  CHECK(r.rc == 2);
  CHECK(r.err.find("typo") != std::string::npos);
  std::ofstream(dir / "g2.json") << R"({"base": "b.json", "axes": {"lr": []}})";
  r = run_wdlab("sweep --grid " + (dir / "g2.json").string() + " --dry-run");
  CHECK(r.rc == 2);
  CHECK(r.err.find("axes.lr") != std::string::npos);
  r = run_wdlab("report " + dir.string() + " --out " + (dir / "rep").string());
  CHECK(r.rc == 3);
  CHECK(r.err.find("no run directory") != std::string::npos);
  CHECK(run_wdlab("sweep").rc == 2);
  CHECK(run_wdlab("reproduce --suite laptop --only no-such-experiment --dry-run").rc == 2);
  fs::remove_all(dir);
}

TEST_CASE("every suite's configs resolve (reproduce --dry-run)") {
  for (const char* s : {"laptop", "demo", "paper"}) {
    const auto r = run_wdlab(std::string("reproduce --dry-run --configs ") + WDLAB_SOURCE_DIR + "/configs --suite " + s);
    INFO(s, r.err);
    CHECK(r.rc == 0);
  }
}

TEST_CASE("report draws its figures as PNG and SVG with Debian's matplotlib") {
  if (!have_fashion_mnist()) std::exit(77);
  if (std::system("/usr/bin/python3 -c 'import matplotlib' >/dev/null 2>&1") != 0) std::exit(77);
  const fs::path dir = fresh_dir("fig");
  for (const char* opt : {"sgd", "adam"}) {
    const auto t = run_wdlab(std::string("train --quiet --set train_subset=256 --set test_subset=128 --set arch.width=16 "
                                         "--set epochs=2 --set batch_size=64 --set optimizer=") +
                             opt + (std::string(opt) == "adam" ? " --set lr=0.003" : "") + " --out " +
                             (dir / "runs" / opt).string());
    INFO(t.err);
    REQUIRE(t.rc == 0);
  }
  const auto rep = run_wdlab("report " + (dir / "runs").string() + " --out " + (dir / "report").string() +
                             " --plot-script " + WDLAB_SOURCE_DIR + "/scripts/plot_report.py");
  INFO(rep.err, slurp(dir / "report" / "figures" / "plot.log"));
  REQUIRE(rep.rc == 0);
  for (const char* f : {"accuracy-runs.png", "accuracy-runs.svg", "loss-runs.png", "loss-runs.svg"}) {
    CHECK_MESSAGE(fs::exists(dir / "report" / "figures" / f), f);
    if (fs::exists(dir / "report" / "figures" / f)) CHECK(fs::file_size(dir / "report" / "figures" / f) > 1000);
  }
  const std::string md = slurp(dir / "report" / "report.md");
  CHECK(md.find("![runs: test accuracy](figures/accuracy-runs.png)") != std::string::npos);
  fs::remove_all(dir);
}

TEST_CASE("reproduce expands a suite's seeds: one run per seed, its seed set, {seed} and {exp} filled (dry run)") {
  const fs::path dir = fresh_dir("seeds");
  write_grid(dir);  // base.json, a valid tiny config
  const nlohmann::json suite = {
      {"name", "seeded"},
      {"experiments",
       {{{"name", "e"},
         {"runs",
          {{{"name", "wd-all"}, {"config", "base.json"}, {"seeds", {1, 2}}},
           {{"name", "wn"}, {"config", "base.json"}, {"seeds", {2}}, {"after", {"wd-all-s{seed}"}},
            {"set", {{"name", "from-{exp}/wd-all-s{seed}"}}}},
           {{"name", "plain"}, {"config", "base.json"}}}}}}}};
  std::ofstream(dir / "suite.json") << suite.dump(2);
  const auto r = run_wdlab("reproduce --dry-run --suite " + (dir / "suite.json").string() + " --out " +
                           (dir / "out").string());
  INFO(r.err, r.out);
  REQUIRE(r.rc == 0);
  CHECK(count(r.out, "e/wd-all-s1: ") == 1);
  CHECK(count(r.out, "e/wd-all-s2: ") == 1);
  CHECK(count(r.out, "e/wn-s2: ") == 1);
  CHECK(count(r.out, "e/plain: ") == 1);
  CHECK(count(r.out, "\"seed\":1") == 1);
  CHECK(count(r.out, "\"seed\":2") == 2);
  CHECK(count(r.out, "/out/e/wd-all-s2\"") == 1);  // {exp} and {seed} both filled
  CHECK(r.out.find("{seed}") == std::string::npos);
  CHECK_FALSE(fs::exists(dir / "out"));
  fs::remove_all(dir);
}

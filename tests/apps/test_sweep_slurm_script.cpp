// `wdlab sweep --emit-slurm` and `--collect` without a Slurm: the emitted job array's resource and
// passthrough lines, its tasks run by hand (SLURM_ARRAY_TASK_ID set as Slurm sets it), the
// submit helper against a stand-in `sbatch` that records its arguments, and --collect against the
// local sweep of the same grid. A real Slurm runs the same scripts in slurm_sweep.py (label slurm).
#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <set>

#include "sweep_support.hpp"

namespace fs = std::filesystem;
using namespace wdlab::test;

namespace {

fs::path fresh(const std::string& name) {
  const fs::path d = fresh_dir("wdlab_sweep_slurm", name);
  fs::create_directories(d);
  return d;
}

/// The lines of `text` that start with `prefix`.
std::vector<std::string> lines_starting(const std::string& text, const std::string& prefix) {
  std::vector<std::string> v;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    if (line.rfind(prefix, 0) == 0) v.push_back(line);
  return v;
}

void write_exe(const fs::path& p, const std::string& text) {
  std::ofstream(p) << text;
  fs::permissions(p, fs::perms::owner_all, fs::perm_options::add);
}

/// The final metrics row of a run directory, without its timing fields.
nlohmann::json final_row(const fs::path& run) {
  std::ifstream f(run / "metrics.jsonl");
  nlohmann::json last;
  for (std::string line; std::getline(f, line);) {
    const auto row = nlohmann::json::parse(line);
    if (row.contains("epoch") && !row.contains("event")) last = row;
  }
  for (const char* k : {"seconds", "wall_s", "time", "elapsed_s", "epoch_seconds"}) last.erase(k);
  return last;
}

}  // namespace

TEST_CASE("sweep --emit-slurm: resource lines from the config, passthrough options, the submit helper") {
  const fs::path dir = fresh("emit");
  const fs::path grid = write_tiny_grid(dir);
  const fs::path out = dir / "out", script = dir / "tiny.sbatch", submit = dir / "tiny-submit.sh";
  const std::string common = "sweep --grid " + grid.string() + " --out " + out.string();

  // Reference backend: one CPU per task (one host thread per run), no GPU; no passthrough lines.
  auto r = run_wdlab(common + " --emit-slurm " + script.string());
  INFO(r.err);
  REQUIRE(r.rc == 0);
  std::string s = slurp(script);
  auto sb = lines_starting(s, "#SBATCH ");
  CHECK(sb == std::vector<std::string>{"#SBATCH --job-name=wdlab-tiny", "#SBATCH --array=0-3",
                                       "#SBATCH --output=" + fs::absolute(out).string() + "/logs/slurm-%A_%a.log",
                                       "#SBATCH --cpus-per-task=1"});
  CHECK(s.find("gres") == std::string::npos);
  REQUIRE(fs::exists(submit));
  CHECK((fs::status(script).permissions() & fs::perms::owner_exec) != fs::perms::none);
  CHECK((fs::status(submit).permissions() & fs::perms::owner_exec) != fs::perms::none);
  CHECK(run_sh("bash -n " + script.string() + " && bash -n " + submit.string()).rc == 0);
  const auto lint = run_sh("! command -v shellcheck >/dev/null || shellcheck " + script.string() + " " + submit.string());
  INFO(lint.out);
  CHECK(lint.rc == 0);  // where Debian's shellcheck is installed

  // Passthrough options become #SBATCH lines, in the order partition, time, account.
  r = run_wdlab(common + " --emit-slurm " + script.string() + " --partition short,long --time 1-12:30 --account acme_lab");
  INFO(r.err);
  REQUIRE(r.rc == 0);
  s = slurp(script);
  sb = lines_starting(s, "#SBATCH --");
  REQUIRE(sb.size() == 7);
  CHECK(sb[3] == "#SBATCH --cpus-per-task=1");
  CHECK(sb[4] == "#SBATCH --partition=short,long");
  CHECK(sb[5] == "#SBATCH --time=1-12:30");
  CHECK(sb[6] == "#SBATCH --account=acme_lab");
  CHECK(s.find("gres") == std::string::npos);

  // --threads N asks N CPUs per task, and each task trains with the CPUs Slurm gave it.
  r = run_wdlab(common + " --emit-slurm " + script.string() + " --threads 3");
  INFO(r.err);
  REQUIRE(r.rc == 0);
  CHECK(lines_starting(slurp(script), "#SBATCH --cpus") == std::vector<std::string>{"#SBATCH --cpus-per-task=3"});
  CHECK(slurp(script).find("train --config \"$OUT/configs/$ID.json\" --out \"$RUN\" --threads \"${SLURM_CPUS_PER_TASK:-1}\"") !=
        std::string::npos);
  r = run_wdlab(common + " --emit-slurm " + script.string() + " --partition short,long --time 1-12:30 --account acme_lab");
  REQUIRE(r.rc == 0);

  // The helper submits the points not done (point 0 marked DONE here) and then the collect job
  // with the same resources, after the array (afterany). A stand-in sbatch records its arguments.
  const auto ids = ids_of(run_wdlab(common + " --dry-run").out);
  REQUIRE(ids.size() == 4);
  fs::create_directories(out / "runs" / ids[0]);
  std::ofstream(out / "runs" / ids[0] / "DONE") << "";
  fs::create_directories(dir / "bin");
  write_exe(dir / "bin" / "sbatch", "#!/bin/bash\nn=$(( $(cat " + (dir / "n").string() + " 2>/dev/null || echo 40) + 1 ))\n"
            "echo $n > " + (dir / "n").string() + "\nprintf '%s\\n' \"$@\" > " + (dir / "sbatch-").string() +
            "$n.args\necho \"$n;cluster\"\n");
  const auto h = run_sh("PATH=" + (dir / "bin").string() + ":$PATH " + submit.string() + " --qos=high");
  INFO(h.out, h.err);
  REQUIRE(h.rc == 0);
  CHECK(h.out.find("array job 41: tasks 1,2,3") != std::string::npos);
  CHECK(h.out.find("collect job 42") != std::string::npos);
  const std::string a41 = slurp(dir / "sbatch-41.args"), a42 = slurp(dir / "sbatch-42.args");
  CHECK(a41 == "--parsable\n--array=1,2,3\n--qos=high\n" + fs::absolute(script).string() + "\n");
  for (const char* want : {"--dependency=afterany:41\n", "--cpus-per-task=1\n", "--partition=short,long\n",
                           "--time=1-12:30\n", "--account=acme_lab\n", "--qos=high\n", " sweep --grid ", " --collect"}) {
    INFO(want);
    CHECK(a42.find(want) != std::string::npos);
  }
  CHECK(a42.find("gres") == std::string::npos);

  // Backend cuda: one GPU per task (and for the collect job, which retrains).
  const fs::path gdir = fresh("emit-gpu");
  const fs::path ggrid = write_tiny_grid(gdir, {{"backend", "cuda"}});
  r = run_wdlab("sweep --grid " + ggrid.string() + " --out " + (gdir / "out").string() + " --emit-slurm " +
                (gdir / "g.sbatch").string());
  INFO(r.err);
  REQUIRE(r.rc == 0);
  CHECK(lines_starting(slurp(gdir / "g.sbatch"), "#SBATCH --gres") == std::vector<std::string>{"#SBATCH --gres=gpu:1"});
  CHECK(lines_starting(slurp(gdir / "g.sbatch"), "#SBATCH --cpus") == std::vector<std::string>{"#SBATCH --cpus-per-task=1"});
  CHECK(slurp(gdir / "g-submit.sh").find("--cpus-per-task=1 --gres=gpu:1") != std::string::npos);
  fs::remove_all(gdir);
  fs::remove_all(dir);
}

TEST_CASE("sweep Slurm options are checked") {
  const fs::path dir = fresh("bad");
  const fs::path grid = write_tiny_grid(dir);
  const std::string common = "sweep --grid " + grid.string() + " --out " + (dir / "out").string();
  const std::string emit = common + " --emit-slurm " + (dir / "s.sbatch").string();
  struct Case {
    std::string args, field;
  };
  for (const Case& c : {Case{emit + " --time 2h", "--time"}, Case{emit + " --time 1-", "--time"},
                        Case{emit + " --partition 'a b'", "--partition"}, Case{emit + " --account 'x;y'", "--account"},
                        Case{common + " --partition short", "--partition"}, Case{common + " --time 10", "--time"},
                        Case{emit + " --collect", "--collect"}, Case{common + " --collect --retry-failed", "--collect"}}) {
    const auto r = run_wdlab(c.args);
    INFO(c.args, " -> ", r.err);
    CHECK(r.rc == 2);
    CHECK(r.err.find(c.field) != std::string::npos);
  }
  // Accepted forms of --time (Slurm's): a negative control for the checks above.
  for (const char* t : {"30", "10:00", "2:00:00", "1-12", "1-12:30", "1-0:0:1", "UNLIMITED"}) {
    INFO(t);
    CHECK(run_wdlab(emit + " --time " + t).rc == 0);
  }
  // One array, one set of resources: a grid that mixes backends is refused.
  nlohmann::json g = nlohmann::json::parse(slurp(grid));
  g["axes"]["backend"] = {"reference", "cuda"};
  std::ofstream(dir / "mixed.json") << g.dump();
  const auto r = run_wdlab("sweep --grid " + (dir / "mixed.json").string() + " --out " + (dir / "m").string() +
                           " --emit-slurm " + (dir / "m.sbatch").string());
  CHECK(r.rc == 2);
  CHECK(r.err.find("mixes backends") != std::string::npos);
  fs::remove_all(dir);
}

TEST_CASE("sweep: the array's tasks run by hand, then --collect selects and retrains as the local sweep does") {
  if (!have_fashion_mnist()) std::exit(77);
  const fs::path dir = fresh("collect");
  const fs::path grid = write_tiny_grid(dir);
  const fs::path local = dir / "local", out = dir / "slurm", script = dir / "tiny.sbatch";
  const auto ids = ids_of(run_wdlab("sweep --grid " + grid.string() + " --out " + out.string() + " --dry-run").out);
  REQUIRE(ids.size() == 4);
  const auto loc = run_wdlab("sweep --grid " + grid.string() + " --out " + local.string() + " -j 2");
  INFO(loc.err);
  REQUIRE(loc.rc == 0);

  const std::string collect = "sweep --grid " + grid.string() + " --out " + out.string() + " --collect";
  REQUIRE(run_wdlab("sweep --grid " + grid.string() + " --out " + out.string() + " --emit-slurm " + script.string()).rc == 0);
  auto task = [&](int i, const std::string& env = "") {
    return run_sh(env + " SLURM_ARRAY_TASK_ID=" + std::to_string(i) + " bash " + script.string());
  };
  // A task whose run fails is recorded as failed (skipped afterwards); one stopped by a signal is not.
  write_exe(dir / "fails.sh", "#!/bin/sh\nexit 4\n");
  write_exe(dir / "killed.sh", "#!/bin/sh\nkill -TERM $$\n");
  auto t = task(0, "WDLAB=" + (dir / "killed.sh").string());
  CHECK(t.rc == 143);
  CHECK(t.out.find("stopped by signal 15") != std::string::npos);
  CHECK_FALSE(fs::exists(out / "logs" / (ids[0] + ".failed")));
  t = task(0, "WDLAB=" + (dir / "fails.sh").string());
  CHECK(t.rc == 4);
  CHECK(slurp(out / "logs" / (ids[0] + ".failed")) == "4\n");
  t = task(0);
  CHECK(t.rc == 0);
  CHECK(t.out.find("failed before (exit 4); skipped") != std::string::npos);
  // --emit-slurm --retry-failed clears the mark, so the next submission runs the point again.
  REQUIRE(run_wdlab("sweep --grid " + grid.string() + " --out " + out.string() + " --emit-slurm " + script.string() +
                    " --retry-failed").rc == 0);
  CHECK_FALSE(fs::exists(out / "logs" / (ids[0] + ".failed")));

  for (int i = 0; i < 3; ++i) {
    t = task(i);
    INFO(i, t.out, t.err);
    CHECK(t.rc == 0);
  }
  // Point 3 not started: --collect trains nothing and says which point is missing.
  auto c = run_wdlab(collect);
  CHECK(c.rc == 5);
  CHECK(c.err.find("1 of 4 points unfinished: " + ids[3] + " (not started)") != std::string::npos);
  // Point 3 stopped mid-epoch (by SIGTERM after step 3, as scancel would): still unfinished.
  t = task(3, "WDLAB_FAULT_SIGTERM_AT=3");
  CHECK(t.rc == 143);
  c = run_wdlab(collect);
  CHECK(c.rc == 5);
  CHECK(c.err.find(ids[3] + " (interrupted)") != std::string::npos);
  CHECK_FALSE(fs::exists(out / "runs" / ids[3] / "DONE"));
  t = task(3);  // resumes from its checkpoint
  CHECK(t.rc == 0);
  CHECK(slurp(out / "logs" / (ids[3] + ".log")).find("resum") != std::string::npos);
  t = task(1);
  CHECK(t.out.find(ids[1] + ": already done") != std::string::npos);

  c = run_wdlab(collect);
  INFO(c.err);
  REQUIRE(c.rc == 0);
  CHECK(count(c.err, ": start ") == 1);  // only the final run
  CHECK(count(c.err, ": start final-") == 1);
  const auto ms = manifest(out), ml = manifest(local);
  REQUIRE(ms.contains("best"));
  REQUIRE(ms.contains("final"));
  CHECK(ms["best"]["overrides"]["lr"].get<double>() == 0.05);  // known independently (sweep_support.hpp)
  CHECK(ms["best"] == ml["best"]);
  CHECK(ms["final"]["id"] == ml["final"]["id"]);
  for (const auto& id : ids) CHECK(final_row(out / "runs" / id) == final_row(local / "runs" / id));
  CHECK(final_row(local / "runs" / ids[0]) != final_row(local / "runs" / ids[3]));  // the comparison has teeth
  const std::string fid = ms["final"]["id"];
  CHECK(final_row(out / fid) == final_row(local / fid));
  CHECK_FALSE(final_row(out / fid).empty());
  // Collecting again changes nothing (the final run is kept).
  c = run_wdlab(collect);
  CHECK(c.rc == 0);
  CHECK(count(c.err, ": start ") == 0);
  fs::remove_all(dir);
}

#include "apps/sweep_run.hpp"

#include <cmath>
#include <fstream>
#include <limits>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "apps/child_runs.hpp"
#include "apps/sweep_grid.hpp"
#include "apps/sweep_slurm.hpp"
#include "common/errors.hpp"
#include "common/io/atomic_file.hpp"
#include "common/io/json_config.hpp"
#include "common/train/metrics_log.hpp"
#include "common/train/signals.hpp"

namespace fs = std::filesystem;

namespace wdlab::app {

void SweepOptions::validate() const {
  if (grid.empty()) throw UsageError("--grid", "is required");
  if (jobs < 1) throw UsageError("-j", fmt::format("must be >= 1, got {}", jobs));
  if (collect && !emit_slurm.empty()) throw UsageError("--collect", "runs after the array; not with --emit-slurm");
  if (collect && retry_failed) throw UsageError("--collect", "runs no point; not with --retry-failed");
  if (slurm.any() && emit_slurm.empty())
    throw UsageError(!slurm.partition.empty() ? "--partition" : !slurm.time.empty() ? "--time" : "--account",
                     "is a Slurm option: only with --emit-slurm");
  slurm.validate();
}

namespace {

/// The final metrics row of a finished run, or null.
nlohmann::json final_row(const fs::path& dir) {
  if (!fs::exists(dir / "DONE") || !fs::exists(dir / "metrics.jsonl")) return nullptr;
  const auto rows = train::MetricsLog(dir).rows();
  return rows.empty() ? nlohmann::json() : nlohmann::json(rows.back());
}

double number_or_nan(const nlohmann::json& row, const char* key) {
  if (row.is_object() && row.contains(key) && row[key].is_number()) return row[key].get<double>();
  return std::numeric_limits<double>::quiet_NaN();
}

/// Writes `text` to `path` unless the file already holds exactly that.
void write_if_changed(const fs::path& path, const std::string& text) {
  if (fs::exists(path)) {
    std::ifstream f(path);
    std::string old((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    if (old == text) return;
  }
  io::write_file_atomic(path, text);
}

ChildJob train_job(const std::string& id, const std::string& label, const fs::path& config, const fs::path& dir,
                   const fs::path& log) {
  ChildJob j;
  j.id = id;
  j.label = label;
  j.args = {"train", "--config", config.string(), "--out", dir.string()};
  if (fs::exists(dir / "config.json")) j.args.push_back("--resume");
  j.log = log;
  return j;
}

std::string outcome_text(const JobResult& r) {
  switch (r.outcome) {
    case JobOutcome::ok: return "done";
    case JobOutcome::failed: return fmt::format("failed (exit {})", r.exit_code);
    case JobOutcome::interrupted: return "interrupted";
    case JobOutcome::skipped_dependency: return "skipped";
    case JobOutcome::not_run: return "not run";
  }
  return "?";
}

}  // namespace

int run_sweep(const SweepOptions& o) {
  o.validate();
  const Grid g = read_grid(o.grid);
  const auto points = expand_grid(g);
  const fs::path out = o.out.empty() ? fs::path("runs") / "sweeps" / g.name : o.out;
  const std::string tag = "sweep " + g.name;
  if (o.dry_run) {
    fmt::print("{}: {} points, base {}, output {}\n", tag, points.size(), g.base.string(), out.string());
    for (const auto& p : points) fmt::print("  {}  {}\n", p.id, describe_overrides(p.overrides));
    fmt::print("selection: highest {} at the final epoch{}\n", g.select,
               g.final_retrain ? ", then the best retrained on train+validation" : "");
    return 0;
  }
  fs::create_directories(out / "configs");
  fs::create_directories(out / "logs");
  for (const auto& p : points) write_if_changed(out / "configs" / (p.id + ".json"), p.config.dump(2) + "\n");

  nlohmann::ordered_json manifest;
  manifest["name"] = g.name;
  manifest["grid"] = fs::absolute(g.file).string();
  manifest["base"] = fs::absolute(g.base).string();
  manifest["select"] = g.select + " at the final epoch (" + (g.select == "val_acc" ? "highest" : "lowest") + ")";
  manifest["id"] = "first 12 hex digits of FNV-1a-64 over the resolved config without its name";
  auto write_manifest = [&](const std::vector<JobResult>* results) {
    nlohmann::ordered_json pts = nlohmann::ordered_json::array();
    for (std::size_t i = 0; i < points.size(); ++i) {
      const auto& p = points[i];
      const fs::path dir = out / "runs" / p.id;
      nlohmann::ordered_json e;
      e["id"] = p.id;
      e["overrides"] = p.overrides;
      e["config"] = "configs/" + p.id + ".json";
      e["dir"] = "runs/" + p.id;
      const auto row = final_row(dir);
      if (!row.is_null()) {
        e["status"] = "done";
        for (const char* k : {"val_acc", "val_loss", "test_acc", "test_loss", "train_loss"})
          if (row.contains(k)) e[k] = row[k];
      } else if (fs::exists(out / "logs" / (p.id + ".failed"))) {
        e["status"] = "failed";
        e["exit_code"] = std::stoi(io::read_json_file(out / "logs" / (p.id + ".failed")).dump());
      } else if (fs::exists(dir / "config.json")) {
        e["status"] = "interrupted";
      } else {
        e["status"] = "pending";
      }
      (void)results;
      pts.push_back(e);
    }
    manifest["points"] = pts;
    io::write_file_atomic(out / "manifest.json", manifest.dump(2) + "\n");
  };
  write_manifest(nullptr);

  if (!o.emit_slurm.empty()) {
    const auto scripts = slurm_scripts(g, out, points, o.slurm, o.emit_slurm, self_executable());
    // --retry-failed: the next submission runs the failed points again.
    if (o.retry_failed) {
      for (const auto& p : points) fs::remove(out / "logs" / (p.id + ".failed"));
      write_manifest(nullptr);
    }
    const fs::path submit = slurm_submit_path(o.emit_slurm);
    for (const auto& [path, text] : {std::pair{o.emit_slurm, scripts.array}, std::pair{submit, scripts.submit}}) {
      io::write_file_atomic(path, text);
      fs::permissions(path, fs::perms::owner_exec | fs::perms::group_exec | fs::perms::others_exec,
                      fs::perm_options::add);
    }
    fmt::print("{}: wrote {} ({} array tasks) and {} (submits the points not done, then --collect); manifest {}\n",
               tag, o.emit_slurm.string(), points.size(), submit.string(), (out / "manifest.json").string());
    return 0;
  }

  if (o.collect) {
    // After a Slurm array: every point must be done or failed (then the loop below runs nothing,
    // as a repeated local sweep); an unfinished one would make the selection depend on which
    // tasks happened to end.
    std::vector<std::string> open;
    for (const auto& p : points)
      if (!fs::exists(out / "runs" / p.id / "DONE") && !fs::exists(out / "logs" / (p.id + ".failed")))
        open.push_back(p.id + (fs::exists(out / "runs" / p.id / "config.json") ? " (interrupted)" : " (not started)"));
    if (!open.empty()) {
      std::string list;
      for (const auto& s : open) list += (list.empty() ? "" : ", ") + s;
      throw PreconditionError(fmt::format("{}: {} of {} points unfinished: {}; submit the array again (its "
                                          "-submit.sh helper submits only these), then collect",
                                          tag, open.size(), points.size(), list));
    }
  }

  std::vector<ChildJob> jobs;
  std::size_t skipped = 0;
  for (const auto& p : points) {
    const fs::path dir = out / "runs" / p.id;
    const fs::path failed = out / "logs" / (p.id + ".failed");
    if (fs::exists(dir / "DONE")) {
      ++skipped;
      fmt::print(stderr, "{}: skip {} (done)\n", tag, p.id);
      continue;
    }
    if (fs::exists(failed)) {
      if (!o.retry_failed) {
        ++skipped;
        fmt::print(stderr, "{}: skip {} (failed before; --retry-failed runs it again)\n", tag, p.id);
        continue;
      }
      fs::remove(failed);
    }
    jobs.push_back(train_job(p.id, describe_overrides(p.overrides), out / "configs" / (p.id + ".json"), dir,
                             out / "logs" / (p.id + ".log")));
  }
  fmt::print(stderr, "{}: {} points, {} to run, {} skipped, -j {}, output {}\n", tag, points.size(), jobs.size(),
             skipped, o.jobs, out.string());
  std::size_t done_count = 0;
  auto on_done = [&](const std::vector<ChildJob>& js, std::size_t i, const JobResult& r) {
    ++done_count;
    const std::string id = js[i].id;
    std::string what = outcome_text(r);
    if (r.outcome == JobOutcome::failed)
      io::write_file_atomic(out / "logs" / (id + ".failed"), std::to_string(r.exit_code) + "\n");
    if (r.outcome == JobOutcome::ok) {
      const fs::path dir = id.rfind("final-", 0) == 0 ? out / id : out / "runs" / id;
      const auto row = final_row(dir);
      what += fmt::format(", val_acc {:.4f}, test_acc {:.4f}", number_or_nan(row, "val_acc"),
                          number_or_nan(row, "test_acc"));
    }
    fmt::print(stderr, "{}: [{}/{}] {} {}, {:.1f} s (log {})\n", tag, done_count, js.size(), id, what, r.seconds,
               js[i].log.string());
  };
  if (!jobs.empty()) {
    const auto results =
        run_child_jobs(jobs, o.jobs, tag, [&](std::size_t i, const JobResult& r) { on_done(jobs, i, r); });
    // A child stopped by a signal we did not forward (e.g. killed by a scheduler): leave the sweep
    // resumable rather than selecting among unfinished points.
    for (const auto& r : results)
      if (r.outcome == JobOutcome::interrupted) {
        write_manifest(nullptr);
        fmt::print(stderr, "{}: a run was stopped by a signal; run the same command again to continue\n", tag);
        throw train::Interrupted{r.exit_code - 128};
      }
  }
  write_manifest(nullptr);

  // Selection by held-out validation at the final epoch.
  const bool maximize = g.select == "val_acc";
  int best = -1;
  double best_v = 0;
  std::size_t finished = 0;
  for (std::size_t i = 0; i < points.size(); ++i) {
    const double v = number_or_nan(final_row(out / "runs" / points[i].id), g.select.c_str());
    if (fs::exists(out / "runs" / points[i].id / "DONE")) ++finished;
    if (std::isnan(v)) continue;
    if (best < 0 || (maximize ? v > best_v : v < best_v)) {
      best = int(i);
      best_v = v;
    }
  }
  fmt::print("{}: {}/{} points finished\n", tag, finished, points.size());
  fmt::print("  {:12}  {:>8}  {:>8}  {}\n", "id", g.select, "test_acc", "settings");
  for (const auto& p : points) {
    const auto row = final_row(out / "runs" / p.id);
    fmt::print("  {:12}  {:>8.4f}  {:>8.4f}  {}{}\n", p.id, number_or_nan(row, g.select.c_str()),
               number_or_nan(row, "test_acc"), describe_overrides(p.overrides),
               int(&p - points.data()) == best ? "   <- best" : "");
  }
  if (best < 0) {
    if (points.size() == finished) throw InternalError(tag + ": finished runs without " + g.select);
    throw NumericError(fmt::format("{}: no point finished with a {} (all failed or diverged; logs in {})", tag,
                                   g.select, (out / "logs").string()));
  }
  const auto& bp = points[std::size_t(best)];
  if (points.size() > 1 && bp.config.value("validation", 0) == 0)
    throw UsageError(g.file.string(), "selection needs a held-out validation split: set validation > 0 in the base or 'set'");
  manifest["best"] = {{"id", bp.id}, {g.select, best_v}, {"overrides", bp.overrides}};
  if (g.final_retrain) {
    const auto fc = final_config(g, bp.config);
    const std::string fid = "final-" + config_id(fc);
    const fs::path fdir = out / fid;
    write_if_changed(out / "configs" / (fid + ".json"), fc.dump(2) + "\n");
    if (!fs::exists(fdir / "DONE")) {
      fmt::print(stderr, "{}: final run: {} on train+validation -> {}\n", tag, bp.id, fdir.string());
      std::vector<ChildJob> fj{train_job(fid, "best " + bp.id + " on train+validation", out / "configs" / (fid + ".json"),
                                         fdir, out / "logs" / (fid + ".log"))};
      done_count = 0;
      run_child_jobs(fj, 1, tag, [&](std::size_t i, const JobResult& r) { on_done(fj, i, r); });
    }
    const auto row = final_row(fdir);
    manifest["final"] = {{"id", fid}, {"from", bp.id}, {"dir", fid}, {"status", row.is_null() ? "failed" : "done"},
                         {"test_acc", number_or_nan(row, "test_acc")}};
    if (row.is_null()) {
      write_manifest(nullptr);
      throw NumericError(fmt::format("{}: the final run failed (log {})", tag, (out / "logs" / (fid + ".log")).string()));
    }
    fmt::print("{}: best {} ({} {:.4f}); final run on train+validation: test_acc {:.4f} ({})\n", tag, bp.id,
               g.select, best_v, number_or_nan(row, "test_acc"), fdir.string());
  } else {
    fmt::print("{}: best {} ({} {:.4f})\n", tag, bp.id, g.select, best_v);
  }
  write_manifest(nullptr);
  return 0;
}

}  // namespace wdlab::app

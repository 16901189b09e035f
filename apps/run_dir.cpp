#include "apps/run_dir.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "common/errors.hpp"
#include "common/io/atomic_file.hpp"
#include "common/io/json_config.hpp"
#include "common/train/metrics_log.hpp"

namespace fs = std::filesystem;

namespace wdlab::app {

namespace {

constexpr const char* kLegacyMetricKeys[] = {"probe_split", "curvature_bn"};

/// Keys (dotted paths) whose values differ between two resolved configs.
void diff_keys(const nlohmann::json& a, const nlohmann::json& b, const std::string& prefix,
               std::vector<std::string>& out) {
  if (a.is_object() && b.is_object()) {
    for (const auto& [k, v] : a.items())
      diff_keys(v, b.contains(k) ? b[k] : nlohmann::json(), prefix + k + ".", out);
    for (const auto& [k, v] : b.items())
      if (!a.contains(k)) out.push_back(prefix + k);
    return;
  }
  if (a != b) out.push_back(prefix.substr(0, prefix.size() - 1));
}

}  // namespace

RunDirectory::RunDirectory(fs::path dir, ResumeMode mode, std::vector<std::string> resets)
    : dir_(std::move(dir)), mode_(mode), resets_(std::move(resets)) {}

bool RunDirectory::accepts(const std::string& key) const {
  for (const auto& r : resets_)
    if (key == r || key.rfind(r + ".", 0) == 0) return true;
  return false;
}

bool RunDirectory::refuse_changed(const nlohmann::json& old, const nlohmann::ordered_json& now,
                                  const std::string& what) const {
  std::vector<std::string> diffs, kept;
  diff_keys(old, nlohmann::json(now), "", diffs);
  for (const auto& d : diffs)
    if (!accepts(d)) kept.push_back(d);
  if (!kept.empty())
    throw UsageError("--resume", fmt::format("the config differs from {}'s in: {} (pass --reset KEY to accept "
                                             "a change, or choose another --out)",
                                             what, fmt::join(kept, ", ")));
  return !diffs.empty();
}

OpenedRun RunDirectory::open(nlohmann::json resolved, ExperimentConfig config) const {
  OpenedRun run;
  run.config = std::move(config);
  run.written = run.config.to_json();
  if (!fs::exists(dir_ / "config.json")) return run;
  if (mode_ == ResumeMode::never)
    throw UsageError("--out", fmt::format("{} holds a run (--resume never); choose another --out", dir_.string()));
  auto old = io::read_json_file(dir_ / "config.json");
  run.legacy = apply_legacy_metric_keys(old);
  if (run.legacy) {
    // A run from before metrics.probe_split/curvature_bn keeps its old meaning (test, eval)
    // whatever the config says: a sweep's config file spells the new defaults out, and its
    // old points must resume. Its rows keep their columns (trainer.cpp); a run in the new
    // meaning is a new run.
    for (const char* key : kLegacyMetricKeys) {
      const auto& was = old["metrics"][key];
      if (resolved.contains("metrics") && resolved["metrics"].contains(key) && resolved["metrics"][key] != was)
        fmt::print(stderr, "note: {} was started before metrics.{} existed; it keeps {} (a new run measures the "
                   "new way)\n", dir_.string(), key, was.get<std::string>());
      resolved["metrics"][key] = was;
    }
    run.config = parse_config(resolved);
  }
  const nlohmann::ordered_json now = run.config.to_json();
  const bool changed = refuse_changed(old, now, (dir_ / "config.json").string());
  if (fs::exists(dir_ / "DONE")) {
    if (!changed) {
      run.complete = true;
      return run;
    }
    fs::remove(dir_ / "DONE");  // extended with --reset (e.g. more epochs): it continues
  }
  run.from = train::find_resume_point(dir_, [&](const std::string& m) { fmt::print(stderr, "warning: {}\n", m); });
  if (run.from) {
    const auto it = run.from->file.metadata.find("config");
    if (it != run.from->file.metadata.end()) {
      nlohmann::json ck;
      try {
        ck = nlohmann::json::parse(it->second);
      } catch (const nlohmann::json::exception&) {
        throw DataError(run.from->path.string(), "metadata \"config\" is not JSON");
      }
      apply_legacy_metric_keys(ck);
      refuse_changed(ck, now, run.from->path.string());
    }
  }
  // A run from before the probe keys is written without them again, so that every later resume
  // (and `wdlab measure`) reads it with its old meaning, whatever config it is resumed with.
  run.written = now;
  if (run.legacy)
    for (const char* key : kLegacyMetricKeys) run.written["metrics"].erase(key);
  return run;
}

void RunDirectory::check_data(const OpenedRun& run, const std::string& dataset_hash) const {
  if (!run.from) return;
  const auto& m = run.from->file.metadata;
  if (m.count("dataset_hash") && m.at("dataset_hash") != dataset_hash && !accepts("data"))
    throw UsageError("--resume", fmt::format("the training data differ from the checkpoint's (hash {} now, {} in {}); "
                                             "pass --reset data to accept",
                                             dataset_hash, m.at("dataset_hash"), run.from->path.string()));
}

void RunDirectory::start(const OpenedRun& run, const nlohmann::ordered_json& meta) const {
  fs::create_directories(dir_);
  io::remove_stale_temporaries(dir_);
  io::write_file_atomic(dir_ / "config.json", run.written.dump(2) + "\n");
  io::write_file_atomic(dir_ / "meta.json", meta.dump(2) + "\n");
}

nlohmann::ordered_json RunDirectory::finish(double seconds) const {
  nlohmann::ordered_json last;
  for (const auto& r : train::MetricsLog(dir_).rows())
    if (!r.contains("event")) last = r;
  nlohmann::ordered_json done;
  done["epochs"] = last.value("epoch", 0);
  done["iterations"] = last.value("iteration", std::int64_t(0));
  for (const char* k : {"train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc", "skipped_steps"})
    if (last.contains(k)) done[k] = last[k];
  done["seconds"] = seconds;  // of this process (a resumed run counts from its restart)
  io::write_file_atomic(dir_ / "DONE", done.dump(2) + "\n");
  return last;
}

}  // namespace wdlab::app

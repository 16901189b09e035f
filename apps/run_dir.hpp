#pragma once
// A run directory (`wdlab train --out DIR`): config.json (the resolved config), meta.json (build,
// backend, data and CPU runtime), metrics.jsonl/.csv, checkpoints/ and DONE (the last epoch's
// summary). What the directory already holds decides whether a run starts, continues from its
// newest valid checkpoint, is already complete, or is refused (never overwritten): a config that
// differs from the recorded one is refused unless each differing key is accepted by --reset.
// Every file is written atomically (common/io/atomic_file.hpp).
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "apps/experiment_config.hpp"
#include "common/train/checkpoint.hpp"
#include "common/train/trainer.hpp"

namespace wdlab::app {

/// continue_run: continue a run found in the directory (start it when it has no checkpoint);
/// never: refuse a directory that holds a run (--resume auto | never).
enum class ResumeMode { continue_run, never };

/// What open() found.
struct OpenedRun {
  ExperimentConfig config;        // the config to run (a legacy run keeps its old metric keys)
  nlohmann::ordered_json written;  // config.json as it is (re)written
  bool complete = false;           // DONE and the config unchanged: nothing to do
  /// Started before metrics.probe_split/curvature_bn existed: it keeps test/eval, and its
  /// config.json is written without the two keys again.
  bool legacy = false;
  std::optional<train::ResumePoint> from;  // the checkpoint to continue from
};

class RunDirectory {
 public:
  /// `resets`: key prefixes whose change is accepted on resume ("data": a changed training set).
  RunDirectory(std::filesystem::path dir, ResumeMode mode, std::vector<std::string> resets);

  const std::filesystem::path& path() const { return dir_; }

  /// Whether a --reset prefix covers the dotted key.
  bool accepts(const std::string& key) const;

  /// Reads the directory (writes nothing but the removal of a stale DONE when --reset extends a
  /// complete run): `resolved` is the config JSON as given, `config` its parse. UsageError
  /// (--out) for a run under ResumeMode::never, (--resume) for a config that differs from
  /// config.json's or the checkpoint's in a key no --reset accepts.
  OpenedRun open(nlohmann::json resolved, ExperimentConfig config) const;

  /// UsageError (--resume) when the checkpoint recorded another training-data hash and
  /// --reset data was not given.
  void check_data(const OpenedRun& run, const std::string& dataset_hash) const;

  /// Creates the directory, removes stale temporaries, writes config.json and meta.json.
  void start(const OpenedRun& run, const nlohmann::ordered_json& meta) const;

  /// Writes DONE from the last epoch row of metrics.jsonl (so a run resumed after its final
  /// checkpoint reports the same numbers as one that was not interrupted) and `seconds` (of this
  /// process); returns that row.
  nlohmann::ordered_json finish(double seconds) const;

 private:
  /// Throws when `old` differs from `now` in a key no --reset accepts; returns whether any differs.
  bool refuse_changed(const nlohmann::json& old, const nlohmann::ordered_json& now, const std::string& what) const;

  std::filesystem::path dir_;
  ResumeMode mode_;
  std::vector<std::string> resets_;
};

}  // namespace wdlab::app

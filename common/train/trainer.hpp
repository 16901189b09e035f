#pragma once
// The backend-neutral training loop: epochs of shuffled minibatches (shared Philox order and
// augmentation), evaluation on train/val/test, a metrics row per epoch (metrics.jsonl and
// metrics.csv), safetensors checkpoints written atomically, resume from the latest checkpoint.
// Batches go to the backend as host batches or, for a backend on DataPath::resident, as example
// ids into data sets it was given once (batching.hpp); both give the same results.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "common/data/dataset.hpp"
#include "common/train/backend.hpp"
#include "common/train/checkpoint.hpp"
#include "common/train/epoch_metrics.hpp"

namespace wdlab::train {

enum class Progress { auto_detect, terminal, lines, quiet };

struct TrainerConfig {
  int epochs = 10;
  int batch_size = 128;
  int eval_batch_size = 1000;
  std::uint64_t seed = 1;
  Augment augment = Augment::off;
  int checkpoint_every = 1;  // epochs
  int keep_checkpoints = 2;
  Progress progress = Progress::auto_detect;
  /// η_k for iteration k, given the iterations per epoch.
  std::function<double(std::int64_t iteration, std::int64_t iterations_per_epoch)> lr;
  NonfinitePolicy on_nonfinite = NonfinitePolicy::abort;
  int max_skips_in_a_row = 10;     // under skip: this many failed steps in a row stop the run
  double divergence_factor = 10;   // loss > factor x the first step's loss stops the run (0: off)
  MetricsOptions metrics;  // groups logged in each epoch's row (common/train/measure.hpp)
  NormTransfer wn;         // wn-conv: rescale after each epoch to another run's norms
  void validate() const;
};

struct Datasets {
  data::Dataset train, val, test;  // val may be empty; images already normalized
};

struct RunSummary {
  int epochs_done = 0;
  std::int64_t iterations = 0;
  EvalStats train, val, test;  // at the last epoch
  double seconds = 0;
};

/// Trains into run_dir (which must hold config.json already, written by the caller). From a
/// resume point (checkpoint.hpp find_resume_point, checked against the config by the caller) it
/// loads the state and continues after it; metrics rows beyond that position are dropped first.
/// A non-finite step is recorded in the metrics and handled by cfg.on_nonfinite; divergence and
/// abort throw NumericError without writing a checkpoint of the bad state.
RunSummary train(Backend& backend, const Datasets& data, const TrainerConfig& cfg,
                 const std::filesystem::path& run_dir, const std::optional<ResumePoint>& from,
                 const nlohmann::json& checkpoint_metadata);

/// Evaluation over a whole data set in batches (host batches; the last one may be partial).
EvalStats evaluate(Backend& backend, const data::Dataset& d, int batch_size);
/// The same, where `d` is the trainer's set `split`: a backend on DataPath::resident (which the
/// trainer has given that set) gets the same batches by example id.
EvalStats evaluate(Backend& backend, const data::Dataset& d, DataSplit split, int batch_size);

}  // namespace wdlab::train

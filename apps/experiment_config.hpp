#pragma once
// An experiment: data, model, optimizer, schedule and training loop, read from JSON (unknown
// keys are errors) with --set key=value overrides, or mapped from the official repository's
// config files. to_json() gives the resolved config written to a run's config.json. Both read
// the field table (apps/config_fields.hpp); the member initializers below are the defaults.
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "apps/math_mode.hpp"
#include "common/model_zoo.hpp"
#include "common/train/trainer.hpp"
#include "reference/init.hpp"
#include "common/optim/optim_config.hpp"
#include "common/optim/schedule.hpp"

namespace wdlab::app {

enum class Precision { float32, float64 };
enum class BackendKind { reference, cuda };

struct DataConfig {
  std::string dataset = "fashion-mnist";  // fashion-mnist | mnist | cifar10 | cifar100
  std::string data_dir;                   // fashion-mnist: Debian's package path when empty
  int validation = 0;                     // held-out examples (paper: 5000)
  int train_subset = 0;                   // first n training examples (0 = all), for quick runs
  int test_subset = 0;
  train::Augment augment = train::Augment::off;
};

/// wn (effective-learning-rate transfer, MATH.md §5, Fig. 4): after each epoch the weight tensors
/// of `scope` (conv | fc | all, by the same families as wd_scope) are rescaled to the norms that
/// the run in `norms_from` logged for that epoch. Every tensor in scope must be followed by BN.
struct WnConfig {
  std::string scope = "none";  // none | conv | fc | all
  std::string norms_from;      // a run directory with metrics.jsonl
};

struct ExperimentConfig {
  std::string name;
  DataConfig data;
  zoo::ModelOptions model;
  ref::Init init = ref::Init::glorot_uniform;
  optim::OptimConfig optim;
  optim::Schedule schedule;
  int epochs = 10;
  int batch_size = 128;
  int eval_batch_size = 1000;
  std::uint64_t seed = 1;
  BackendKind backend = BackendKind::reference;
  Precision precision = Precision::float32;
  MathMode math = MathMode::fp32;  // cuda only; tf32 when asked
  int checkpoint_every = 1;
  int keep_checkpoints = 2;
  train::NonfinitePolicy on_nonfinite = train::NonfinitePolicy::abort;
  double divergence_factor = 10;  // 0: off
  train::MetricsOptions metrics;  // metrics.{groups,probe,jac_probes,probe_distribution,probe_split,curvature_bn}
  WnConfig wn;

  nlohmann::ordered_json to_json() const;
  void validate() const;
};

/// A resolved config written before metrics.probe_split and metrics.curvature_bn existed (a run's
/// config.json or a checkpoint's metadata: a "metrics" object without either key) measured the
/// curvature groups on the test split with BN in evaluation mode. Adds those two values, so the
/// run resumes and is measured with its old meaning; returns whether it did. Anything else is
/// left as it is (a user's config without the keys gets the new defaults, train and batch).
bool apply_legacy_metric_keys(nlohmann::json& j);

/// Whether a JSON object looks like the official repository's config (model_name, use_kfac, ...).
bool is_official_config(const nlohmann::json& j);

/// Reads our format, field by field from the table; throws UsageError naming the key path at
/// fault (an unknown key, a value of the wrong type or out of bounds).
ExperimentConfig parse_config(const nlohmann::json& j);

/// Maps an official config to ours; each line of `mapping` says what became of one key.
ExperimentConfig map_official_config(const nlohmann::json& j, std::vector<std::string>& mapping);

}  // namespace wdlab::app

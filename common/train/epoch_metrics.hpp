#pragma once
// The trainer's per-epoch mechanism metrics (common/train/measure.hpp names them) and wn-conv,
// the effective-learning-rate transfer of Fig. 4 (MATH.md §5): after each epoch, the tensors in
// scope are rescaled to the norms another run logged for the same epoch. Backend-neutral: the
// numbers come from Backend::measure and Backend::rescale_weights.
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/data/dataset.hpp"
#include "common/train/backend.hpp"
#include "common/train/measure.hpp"

namespace wdlab::train {

struct TrainerConfig;
struct Datasets;
class RotationMeter;

struct MetricsOptions {
  MetricGroups groups = default_metric_groups();
  int probe = 256;      // N: the probe set is the first N examples of probe_split
  ProbeSplit probe_split = ProbeSplit::train;  // training split (after the validation split)
  CurvatureBn curvature_bn = CurvatureBn::batch;  // BN as K-FAC sees it (docs/curvature-probes.md)
  int jac_probes = 16;  // M random projections for jac_norm_est
  ProbeDistribution probe_distribution = ProbeDistribution::rademacher;
  void validate() const;  // UsageError naming metrics.probe / metrics.jac_probes
};

/// wn: the weight tensors to rescale and the run whose metrics.jsonl gives their norms.
struct NormTransfer {
  std::filesystem::path source;     // the other run's directory
  std::vector<std::string> params;  // weight tensors in scope
  bool active() const { return !params.empty(); }
};

/// Checks that `source`/metrics.jsonl exists and that its first row has norm.<param> for every
/// param (DataError naming the file and the missing key otherwise).
void check_norm_transfer(const NormTransfer& t);

/// The (param, norm.<param>) targets of `epoch` in the source's metrics.jsonl, read now (so a
/// source still running is followed as far as it has got). DataError if the row or a key is
/// missing.
NamedValues norm_targets(const NormTransfer& t, int epoch);

/// wn after epoch `epoch`: backend.rescale_weights(norm_targets(t, epoch)); nothing when inactive.
void apply_norm_transfer(Backend& backend, const NormTransfer& t, int epoch);

/// The set that opts.probe_split names: data.train (the training split, validation examples
/// already held out) or data.test.
const data::Dataset& probe_source(const Datasets& data, ProbeSplit split);

/// The probe set's size: min(opts.probe, the size of its source).
int probe_size(const data::Dataset& probe_set, const MetricsOptions& opts);

/// The metrics of opts.groups that the backend computes, the curvature ones on the first
/// opts.probe examples of `probe_set` with BN as opts.curvature_bn says; rng_step keys the
/// random projections and signs (e.g. the epoch). Group rotation (rows last) from epoch_steps,
/// the trainer's steps; without them (`wdlab measure`) from one step on the probe batch at
/// learning rate lr and `iteration`, after which the backend's state is restored
/// (one_step_rotation, rotation.hpp).
NamedValues measure_on_probe(Backend& backend, const data::Dataset& probe_set, const MetricsOptions& opts,
                             double lr, std::uint64_t seed, std::uint64_t rng_step,
                             const RotationMeter* epoch_steps = nullptr, std::int64_t iteration = 0);

/// Whether a row records its probe set (probe_split, probe_n, curvature_bn): yes for every run
/// started since those keys exist; a run resumed from before keeps the columns it started with.
enum class ProbeColumns { record, omit };

/// Fills an epoch's row (which already holds train_loss and test_loss): the backend's metrics
/// (with a probe group, probe_split, probe_n and curvature_bn first, unless `columns` is omit),
/// then with group train_eval the training set in evaluation mode (train_eval_loss,
/// train_eval_acc), and with group gap gen_gap = test_loss − train_eval_loss if measured, else
/// test_loss − train_loss (the epoch's running mean, which lags the end-of-epoch model).
/// Group rotation comes from epoch_steps (the epoch's steps; none at epoch 0: null rows).
void add_epoch_metrics(Backend& backend, const Datasets& data, const TrainerConfig& cfg, double lr, int epoch,
                       const RotationMeter& epoch_steps, nlohmann::ordered_json& row,
                       ProbeColumns columns = ProbeColumns::record);

}  // namespace wdlab::train

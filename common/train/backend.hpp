#pragma once
// The coarse interface between the backend-neutral trainer and a backend (reference | cuda):
// one virtual call per training step, evaluation or checkpoint, never per layer or element.
// A backend owns its model, optimizer state and buffers; the trainer sees host scalars.
#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "common/errors.hpp"
#include "common/io/safetensors.hpp"
#include "common/train/measure.hpp"

namespace wdlab::train {

/// A batch on the host: n images of `image_size` floats (normalized, augmented), n labels.
struct HostBatch {
  std::span<const float> images;
  std::span<const std::int32_t> labels;
  int n = 0;
};

/// Whether training images are augmented (data::augment_image: pad, random crop, flip).
enum class Augment { off, on };

/// How a batch's images are augmented: example id gets data::augment_image(seed, step, id, ...,
/// pad) (Philox purpose augment, step = the global step, index = the example's id in its data
/// set), the draws the host batches use, so the data path does not change what a step sees.
struct AugmentSpec {
  Augment mode = Augment::off;
  std::uint64_t seed = 0;
  std::uint64_t step = 0;
  int pad = 4;
};

/// How the trainer feeds a backend (Backend::data_path).
enum class DataPath {
  host_batches,  // every call gets a HostBatch the trainer gathered and augmented
  resident,      // each data set is handed over once (set_resident_data); calls name example ids
};

/// The trainer's data sets, as named in the resident-data calls.
enum class DataSplit { train, val, test };
std::string to_string(DataSplit s);

/// A whole data set on the host: N images of C·H·W floats (normalized, not augmented), N labels
/// in 0..num_classes-1. A view: a backend copies what it keeps before set_resident_data returns.
struct DataView {
  std::span<const float> images;
  std::span<const std::int32_t> labels;
  int channels = 0, height = 0, width = 0, num_classes = 0;
  std::int64_t size() const { return std::int64_t(labels.size()); }
  std::int64_t image_size() const { return std::int64_t(channels) * height * width; }
};

/// A batch of a resident data set by example ids: slot k holds example ids[k] of `split`,
/// augmented as `augment` says; the same images and labels HostBatch would carry.
struct IdBatch {
  DataSplit split = DataSplit::train;
  std::span<const std::int64_t> ids;
  AugmentSpec augment;
  int n() const { return int(ids.size()); }
};

/// What --on-nonfinite does with a step that produced a non-finite value.
enum class NonfinitePolicy {
  abort,  // record it, keep the last checkpoint as it is, exit with ExitCode::numeric
  skip,   // record it, leave the state as it was before the step, go on with the next batch
};

/// Something numerical a step wants recorded in the metrics (not an error by itself).
struct StepEvent {
  std::string kind;    // "damping_raised", ...
  std::string layer;   // parameter or layer name
  std::string detail;  // human-readable
};

struct StepStats {
  double loss = 0;          // mean minibatch loss before the step
  std::int64_t correct = 0;
  bool finite = true;       // loss, gradients, factors, inverses and update all finite
  /// When !finite: which quantity (loss | gradient | kfac_factor | kfac_inverse | update) and
  /// which layer or parameter ("" for the loss). Under NonfinitePolicy::skip the backend has left
  /// its state as before the step (a non-finite K-FAC factor estimate is dropped, the step kept).
  std::string nonfinite_tensor, nonfinite_layer;
  std::vector<StepEvent> events;
  /// Under WeightSteps::record (Backend::record_weight_steps), after a finite step: one record
  /// per weight tensor, in weight_norms() order (group rotation, rotation.hpp). Empty otherwise.
  std::vector<WeightStep> weight_steps;
};

struct EvalStats {
  double loss_sum = 0;      // Σ per-example loss
  std::int64_t correct = 0;
  std::int64_t n = 0;
  double loss() const { return n ? loss_sum / double(n) : 0.0; }
  double accuracy() const { return n ? double(correct) / double(n) : 0.0; }
  EvalStats& operator+=(const EvalStats& o) {
    loss_sum += o.loss_sum;
    correct += o.correct;
    n += o.n;
    return *this;
  }
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string describe() const = 0;
  /// Under skip the backend must be able to undo a step (it may keep a copy of its state). The
  /// default accepts abort and refuses skip with UsageError: a backend that cannot undo a step
  /// must not let `--on-nonfinite skip` pass silently as abort-without-stopping.
  virtual void set_nonfinite_policy(NonfinitePolicy policy) {
    if (policy == NonfinitePolicy::skip)
      throw UsageError("--on-nonfinite", describe() + " cannot undo a step, so it does not support skip (use abort)");
  }
  /// One optimizer step with learning rate lr at iteration k (completed steps so far).
  virtual StepStats train_step(const HostBatch& batch, double lr, std::int64_t iteration) = 0;
  /// K-FAC's factor initialization by a pass over the data (the official roger_init).
  virtual bool wants_factor_init() const { return false; }
  virtual void accumulate_factor_init(const HostBatch& batch, std::int64_t index) {
    (void)batch;
    (void)index;
  }
  virtual void finish_factor_init() {}
  /// Loss and accuracy in evaluation mode (BN running statistics).
  virtual EvalStats evaluate(const HostBatch& batch) = 0;
  /// The logits of a batch in evaluation mode, n × classes row-major, in double (exact for a
  /// float backend): `wdlab eval --dump-logits`. The default refuses with UsageError.
  virtual std::vector<double> logits(const HostBatch& batch) {
    (void)batch;
    throw UsageError("--dump-logits", describe() + " does not return logits (use --backend reference)");
  }
  /// Resident data (a GPU holds the whole CIFAR set and augments there): under
  /// DataPath::resident the trainer calls set_resident_data once per data set before the first
  /// step, then the *_ids calls, each of which must give what its HostBatch twin gives for the
  /// batch the trainer would have gathered (same examples, same augmentation draws). The host
  /// batch calls stay valid (evaluation of other sets, the fault-injection hook). The defaults
  /// serve host batches only.
  virtual DataPath data_path() const { return DataPath::host_batches; }
  virtual void set_resident_data(DataSplit split, const DataView& data) {
    (void)data;
    throw UsageError("data", describe() + " does not hold resident data (" + to_string(split) + ")");
  }
  virtual StepStats train_step_ids(const IdBatch& batch, double lr, std::int64_t iteration) {
    (void)batch;
    (void)lr;
    (void)iteration;
    throw UsageError("data", describe() + " does not take batches by example id");
  }
  virtual EvalStats evaluate_ids(const IdBatch& batch) {
    (void)batch;
    throw UsageError("data", describe() + " does not take batches by example id");
  }
  virtual void accumulate_factor_init_ids(const IdBatch& batch, std::int64_t index) {
    (void)batch;
    (void)index;
    throw UsageError("data", describe() + " does not take batches by example id");
  }
  /// ‖θ‖₂ of every weight tensor (dense/conv weights), by parameter name.
  virtual std::vector<std::pair<std::string, double>> weight_norms() const = 0;
  /// Parameters (PyTorch names and layouts) and optimizer state ("optim." names).
  virtual io::SafetensorsFile state() const = 0;
  virtual void load_state(const io::SafetensorsFile& file) = 0;
  /// The numbers behind the mechanism metrics of the groups in req (norms, elr, damping,
  /// jacobian, jacobian_est, gn, trace; rotation needs the weights' decay and scale and the
  /// optimizer) for the current parameters, the curvature ones on `probe`
  /// (common/train/measure.hpp). The rows are named by metric_rows, never by a backend. This
  /// default serves norms and elr's η/‖θ_l‖² from weight_norms() (no optimizer: no elr_opt) and
  /// refuses the other groups with UsageError, so a backend without its own still trains with
  /// the default groups.
  virtual MeasureSummary measure_summary(const HostBatch& probe, const MeasureRequest& req) {
    (void)probe;
    MetricGroups rest = req.groups;
    rest.bits &= ~(unsigned(MetricGroup::norms) | unsigned(MetricGroup::elr));
    if (rest.bits != 0)
      throw UsageError("metrics", describe() + " cannot compute the metric groups " + to_string(rest));
    MeasureSummary s;
    for (const auto& [name, norm] : weight_norms()) s.weights.push_back(WeightSummary{name, norm});
    return s;
  }
  /// The named rows of measure_summary (metric_rows; without rotation, which needs steps:
  /// rotation.hpp): (name, value) pairs.
  NamedValues measure(const HostBatch& probe, const MeasureRequest& req) {
    return metric_rows(measure_summary(probe, req), req);
  }
  /// Whether train_step fills StepStats::weight_steps (group rotation). The default refuses
  /// record with UsageError.
  virtual void record_weight_steps(WeightSteps mode) {
    if (mode == WeightSteps::record)
      throw UsageError("metrics", describe() + " does not record weight steps (metric group rotation)");
  }
  /// wn-conv (MATH.md §5): for each (weight name, target norm) W_l ← c·W_l, c = target/‖W_l‖,
  /// with the layer's bias and the running mean/variance of the BN that follows it scaled by c,
  /// c, c², so that predictions (train and eval mode) are unchanged up to BN's ε. Optimizer state
  /// (momentum, moments, K-FAC factors) is left as it is. A backend that cannot says so.
  virtual void rescale_weights(const NamedValues& targets) {
    (void)targets;
    throw UsageError("wn", describe() + " cannot rescale weights");
  }
};

}  // namespace wdlab::train

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
  /// Under skip the backend must be able to undo a step (it may keep a copy of its state).
  virtual void set_nonfinite_policy(NonfinitePolicy policy) { (void)policy; }
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
  /// ‖θ‖₂ of every weight tensor (dense/conv weights), by parameter name.
  virtual std::vector<std::pair<std::string, double>> weight_norms() const = 0;
  /// Parameters (PyTorch names and layouts) and optimizer state ("optim." names).
  virtual io::SafetensorsFile state() const = 0;
  virtual void load_state(const io::SafetensorsFile& file) = 0;
  /// The mechanism metrics of the groups in req that a backend computes (norms, elr, damping,
  /// jacobian, jacobian_est, gn, trace; common/train/measure.hpp) for the current parameters,
  /// the curvature ones on `probe`; (name, value) pairs. This default serves norms and elr's
  /// η/‖θ_l‖² from weight_norms() (no elr_opt: that needs the optimizer) and refuses the others
  /// with UsageError, so a backend without its own measure() still trains with the default groups.
  virtual NamedValues measure(const HostBatch& probe, const MeasureRequest& req) {
    (void)probe;
    MetricGroups rest = req.groups;
    rest.bits &= ~(unsigned(MetricGroup::norms) | unsigned(MetricGroup::elr));
    if (rest.bits != 0)
      throw UsageError("metrics", describe() + " cannot compute the metric groups " + to_string(rest));
    NamedValues out;
    for (const auto& [name, norm] : weight_norms()) {
      if (req.groups.has(MetricGroup::norms)) out.emplace_back("norm." + name, norm);
      if (req.groups.has(MetricGroup::elr)) out.emplace_back("elr." + name, req.lr / (norm * norm));
    }
    return out;
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

// The rotation group's definitions (rotation.hpp has the derivations).
#include "common/train/rotation.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include <fmt/format.h>

#include "common/errors.hpp"

namespace wdlab::train {

double step_angle(const WeightStep& s) {
  const double denom = std::sqrt(s.norm2_before) * std::sqrt(s.norm2_after);
  if (!(denom > 0)) return 0.0;
  return std::acos(std::clamp(s.dot / denom, -1.0, 1.0));
}

void RotationMeter::add(std::span<const WeightStep> step) {
  if (step.empty()) return;
  if (angle_.empty()) {
    angle_.assign(step.size(), 0.0);
    ratio_.assign(step.size(), 0.0);
    unit_g2_.assign(step.size(), 0.0);
  }
  if (step.size() != angle_.size())
    throw InternalError(fmt::format("rotation: a step recorded {} weight tensors, earlier ones {}", step.size(),
                                    angle_.size()));
  for (std::size_t i = 0; i < step.size(); ++i) {
    const WeightStep& s = step[i];
    angle_[i] += step_angle(s);
    ratio_[i] += s.norm2_before > 0 ? std::sqrt(s.grad2 / s.norm2_before) : 0.0;
    unit_g2_[i] += s.grad2 * s.norm2_before;
  }
  ++steps_;
}

void RotationMeter::clear() {
  angle_.clear();
  ratio_.clear();
  unit_g2_.clear();
  steps_ = 0;
}

double RotationMeter::mean_angle(std::size_t i) const { return angle_.at(i) / double(steps_); }
double RotationMeter::mean_grad_ratio(std::size_t i) const { return ratio_.at(i) / double(steps_); }
double RotationMeter::rms_unit_gradient(std::size_t i) const { return std::sqrt(unit_g2_.at(i) / double(steps_)); }

std::optional<double> predicted_rotation(const OptimizerSummary& o, const WeightSummary& w, double lr) {
  const double eta = lr, lambda = w.decay_coeff, a = o.momentum;
  if (w.scale == ScaleInvariance::not_invariant || !(lambda > 0) || !(eta > 0)) return std::nullopt;
  switch (o.rotation) {
    case optim::RotationLaw::sgd_heavy_ball:
      switch (w.decay) {
        case TensorDecay::none: return std::nullopt;
        case TensorDecay::l2: return std::sqrt(2 * eta * lambda / (1 + a));            // Wan et al. 2021
        case TensorDecay::wd: return std::sqrt(2 * eta * lambda * (1 - a) / (1 + a));  // decoupled (rotation.hpp)
      }
      break;
    case optim::RotationLaw::adamw:
      switch (w.decay) {
        case TensorDecay::none:
        case TensorDecay::l2: return std::nullopt;
        case TensorDecay::wd: return std::sqrt(2 * eta * lambda * (1 - a) / (1 + a));  // Kosson et al. 2024
      }
      break;
    case optim::RotationLaw::none: return std::nullopt;  // Nesterov, K-FAC, Lion: not derived
  }
  throw InternalError("predicted_rotation: unknown family or decay");
}

std::optional<double> predicted_elr(const OptimizerSummary& o, const WeightSummary& w, double lr,
                                    double unit_gradient) {
  if (o.rotation != optim::RotationLaw::sgd_heavy_ball || !(unit_gradient > 0)) return std::nullopt;
  const auto rot = predicted_rotation(o, w, lr);
  if (!rot) return std::nullopt;
  return *rot * std::sqrt(1 - o.momentum * o.momentum) / unit_gradient;
}

NamedValues rotation_rows(const MeasureSummary& s, const RotationMeter& steps, double lr) {
  if (!s.optimizer) throw InternalError("rotation_rows: the summary has no optimizer");
  if (steps.steps() > 0 && steps.tensors() != s.weights.size())
    throw InternalError(fmt::format("rotation: {} tensors recorded, {} weight tensors", steps.tensors(),
                                    s.weights.size()));
  const double na = std::numeric_limits<double>::quiet_NaN();  // written as null
  const bool stepped = steps.steps() > 0;
  NamedValues out;
  for (std::size_t i = 0; i < s.weights.size(); ++i) {
    const WeightSummary& w = s.weights[i];
    out.emplace_back("rot." + w.name, stepped ? steps.mean_angle(i) : na);
    out.emplace_back("grad_ratio." + w.name, stepped ? steps.mean_grad_ratio(i) : na);
    out.emplace_back("rot_pred." + w.name, predicted_rotation(*s.optimizer, w, lr).value_or(na));
    const auto elr = stepped ? predicted_elr(*s.optimizer, w, lr, steps.rms_unit_gradient(i)) : std::nullopt;
    out.emplace_back("elr_pred." + w.name, elr.value_or(na));
  }
  return out;
}

bool records_weight_steps(MetricGroups g) { return g.has(MetricGroup::rotation); }

ScaleInvariance weight_scale_invariance(const NetworkSpec& spec, int layer) {
  int consumers = 0, bn = 0;
  for (int j = layer + 1; j < int(spec.layers.size()); ++j)
    for (const int in : spec.layers[std::size_t(j)].inputs)
      if (in == layer) {
        ++consumers;
        if (spec.layers[std::size_t(j)].kind == LayerKind::batchnorm) ++bn;
      }
  return consumers == 1 && bn == 1 ? ScaleInvariance::invariant : ScaleInvariance::not_invariant;
}

RotationMeter one_step_rotation(Backend& backend, const HostBatch& batch, double lr, std::int64_t iteration) {
  const io::SafetensorsFile before = backend.state();
  RotationMeter meter;
  backend.record_weight_steps(WeightSteps::record);
  try {
    const StepStats s = backend.train_step(batch, lr, iteration);
    if (!s.finite)
      throw NumericError(fmt::format("rotation: the measurement step was not finite ({} {})", s.nonfinite_tensor,
                                     s.nonfinite_layer));
    meter.add(s.weight_steps);
  } catch (...) {
    backend.record_weight_steps(WeightSteps::off);
    backend.load_state(before);
    throw;
  }
  backend.record_weight_steps(WeightSteps::off);
  backend.load_state(before);
  return meter;
}

}  // namespace wdlab::train

#pragma once
// The rotation group (measure.hpp): per weight tensor the angular update per step, the ratio
// ‖g‖/‖θ‖, and the equilibrium predictions beside them, from the WeightStep records a backend
// gives (Backend::record_weight_steps). Backend-neutral: both backends share these definitions.
//
// Equilibrium (Wan et al. 2021, "Spherical motion dynamics"; Kosson et al. 2024, "Rotational
// equilibrium"). For a scale-invariant W (followed by BN) the loss gradient is orthogonal to W:
// ⟨g, W⟩ = 0 and g = g̃/‖W‖ with g̃ the gradient at unit norm. Treat the gradients of successive
// steps as uncorrelated with equal expected square E‖g‖². Decay shrinks ‖W‖², the orthogonal
// updates grow it; equilibrium is where the two balance over a long window.
//   SGD heavy ball, momentum α, L2 (v ← αv + g + λW, W ← W − ηv): over a long window each
//     gradient moves W by η/(1−α)·g in total and the decay by η/(1−α)·λW, so per step
//     Δ‖W‖² = −2ηλ/(1−α)·‖W‖² + η²E‖g‖²/(1−α)²  ⇒  ‖W‖² = ηE‖g‖²/(2λ(1−α)).
//     The step's orthogonal part is ηv⊥ with E‖v⊥‖² = E‖g‖²/(1−α²) (a geometric sum of
//     uncorrelated terms), so the angle per step is
//       ∠ ≈ η‖v⊥‖/‖W‖ = √(η²E‖g‖²/(1−α²) · 2λ(1−α)/(ηE‖g‖²)) = √(2ηλ/(1+α))   (Wan et al.)
//   SGD heavy ball, decoupled WD (W ← W − η(v + λW), v ← αv + g): the decay is not amplified
//     by the momentum: Δ‖W‖² = −2ηλ‖W‖² + η²E‖g‖²/(1−α)² ⇒ ‖W‖² = ηE‖g‖²/(2λ(1−α)²), and
//       ∠ ≈ √(η²E‖g‖²/(1−α²) · 2λ(1−α)²/(ηE‖g‖²)) = √(2ηλ(1−α)/(1+α)).
//   AdamW, β₁ (W ← W − η(m̂/√v̂ + λW)): with u = g/√v̂ per element, E‖u‖² = C (the tensor's
//     size) and the same argument with α = β₁ gives ‖W‖² = ηC/(2λ) and
//       ∠ ≈ √(2ηλ(1−β₁)/(1+β₁))   (Kosson et al.)
//   The effective learning rate at equilibrium (SGD): ∠ = (η/‖W‖²)·‖g̃‖/√(1−α²), so
//       η/‖W‖² = ∠_pred·√(1−α²)/‖g̃‖,   ‖g̃‖ = ‖g‖·‖W‖ measured (rms over the epoch's steps).
//   No prediction (null): no decay or λ = 0, K-FAC (the preconditioner is not isotropic), Adam
//   with L2 (the decay goes through √v̂), Nesterov (not derived here), or a tensor that is not
//   scale-invariant (⟨g, W⟩ ≠ 0).
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "common/network_spec.hpp"
#include "common/train/backend.hpp"
#include "common/train/measure.hpp"

namespace wdlab::train {

/// ∠(θ_t, θ_{t+1}) = arccos(⟨θ_t,θ_{t+1}⟩/(‖θ_t‖‖θ_{t+1}‖)) in radians (the cosine clamped to
/// [−1, 1]; 0 for a zero tensor).
double step_angle(const WeightStep& s);

/// Per weight tensor, sums over the steps of an epoch (or of one measurement step).
class RotationMeter {
 public:
  /// One step's records (one per weight tensor, spec order); an empty record (a skipped step)
  /// is not counted. InternalError if the tensor count changes.
  void add(std::span<const WeightStep> step);
  void clear();
  std::int64_t steps() const { return steps_; }
  std::size_t tensors() const { return angle_.size(); }
  double mean_angle(std::size_t i) const;        // mean_t ∠(θ_t, θ_{t+1})
  double mean_grad_ratio(std::size_t i) const;   // mean_t ‖g_t‖/‖θ_t‖
  double rms_unit_gradient(std::size_t i) const; // √(mean_t ‖g_t‖²‖θ_t‖²) = rms ‖g̃‖

 private:
  std::vector<double> angle_, ratio_, unit_g2_;
  std::int64_t steps_ = 0;
};

/// rot_pred for weight w at learning rate η (the derivations above); nullopt where none applies.
std::optional<double> predicted_rotation(const OptimizerSummary& o, const WeightSummary& w, double lr);
/// elr_pred = η/‖W‖² at equilibrium (SGD heavy ball only): rot_pred·√(1−α²)/g̃; nullopt otherwise.
std::optional<double> predicted_elr(const OptimizerSummary& o, const WeightSummary& w, double lr, double unit_gradient);

/// The rows of group rotation: per weight tensor rot., grad_ratio., rot_pred., elr_pred. (NaN,
/// written as null, where not applicable; measure.hpp). s needs weights (with decay and scale)
/// and optimizer; the meter's tensors are s.weights in order (or none: no steps yet).
NamedValues rotation_rows(const MeasureSummary& s, const RotationMeter& steps, double lr);

/// Whether the groups g need the per-step records (WeightStep): the trainer turns recording on,
/// and `wdlab measure` takes its measurement step, exactly when this says so.
bool records_weight_steps(MetricGroups g);

/// Whether layer `layer`'s weight is scale-invariant: its output's only consumer is BN.
ScaleInvariance weight_scale_invariance(const NetworkSpec& spec, int layer);

/// `wdlab measure`'s rotation: one optimizer step from the backend's current state on `batch`
/// with learning rate lr at `iteration`, recorded, then the state restored (state/load_state).
RotationMeter one_step_rotation(Backend& backend, const HostBatch& batch, double lr, std::int64_t iteration);

}  // namespace wdlab::train

// Group rotation (common/train/rotation.hpp): the angle per step and ‖g‖/‖θ‖ against a hand
// computation from the parameters before and after an explicit SGD step (read through state(),
// not through the recording), the equilibrium predictions against their formulas evaluated
// outside the code (Python, digits below), and negative controls.
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <cmath>
#include <limits>

#include "../support/expect_pass.hpp"
#include "common/compare.hpp"
#include "common/errors.hpp"
#include "common/model_zoo.hpp"
#include "common/philox.hpp"
#include "common/train/epoch_metrics.hpp"
#include "common/train/rotation.hpp"
#include "common/train/trainer.hpp"
#include "reference/backend.hpp"

using namespace wdlab;
using namespace wdlab::ref;
using namespace wdlab::optim;

namespace {

constexpr int kIn = 5, kClasses = 3, kN = 6;

Comparison cmp(const std::string& name, double x, double ref, tol::Kind k) {
  return compare(name, std::span<const double>(&x, 1), std::span<const double>(&ref, 1), k);
}

double value(const train::NamedValues& vals, const std::string& key) {
  for (const auto& [k, v] : vals)
    if (k == key) return v;
  FAIL("missing " << key);
  return 0.0;
}

/// A BN MLP: fc0 is followed by BN (scale-invariant), fc1 (the head) is not.
NetworkSpec bn_mlp() {
  return zoo::mlp(Shape{kIn, 1, 1}, kClasses, {.depth = 1, .width = 4, .bias = Bias::off, .norm = Norm::batchnorm});
}

data::Dataset probe_set() {
  data::Dataset d;
  d.name = "probe";
  d.channels = kIn;
  d.height = d.width = 1;
  d.num_classes = kClasses;
  for (int n = 0; n < kN; ++n) {
    for (int i = 0; i < kIn; ++i)
      d.images.push_back(float(rng::normal(5, rng::Purpose::synthetic, 0, std::uint64_t(n * kIn + i))));
    d.labels.push_back(n % kClasses);
  }
  return d;
}

train::MetricsOptions rotation_only() {
  train::MetricsOptions m;
  m.groups = train::parse_metric_groups("test", "rotation");
  m.probe = kN;
  return m;
}

optim::OptimConfig kfac_config() {
  optim::OptimConfig c;
  c.kind = optim::OptimizerKind::kfac_f;
  return c;
}
optim::OptimConfig nesterov_config() {
  optim::OptimConfig c;
  c.sgd.kind = optim::MomentumKind::nesterov;
  return c;
}
optim::OptimConfig lion_config() {
  optim::OptimConfig c;
  c.kind = optim::OptimizerKind::lion;
  return c;
}

}  // namespace

TEST_CASE("step_angle and RotationMeter: known angles, their mean, ‖g‖/‖θ‖ and the rms unit gradient") {
  // θ_t = (1, 0), θ_{t+1} = r(cos a, sin a): ⟨·,·⟩ = r cos a, ‖θ_t‖² = 1, ‖θ_{t+1}‖² = r².
  const auto step = [](double a, double r, double g2) {
    return train::WeightStep{r * std::cos(a), 1.0, r * r, g2};
  };
  CHECK(train::step_angle(step(0.1, 3.0, 0)) == doctest::Approx(0.1).epsilon(1e-12));
  CHECK(train::step_angle(train::WeightStep{1.0 + 1e-15, 1.0, 1.0, 0}) == 0.0);  // clamped, not NaN
  CHECK(train::step_angle(train::WeightStep{0, 0, 1.0, 0}) == 0.0);               // a zero tensor
  train::RotationMeter m;
  m.add(std::vector<train::WeightStep>{step(0.1, 2.0, 4.0)});
  m.add(std::vector<train::WeightStep>{});  // a skipped step: not counted
  m.add(std::vector<train::WeightStep>{step(0.3, 0.5, 16.0)});
  CHECK(m.steps() == 2);
  CHECK(m.mean_angle(0) == doctest::Approx(0.2).epsilon(1e-12));
  CHECK(m.mean_grad_ratio(0) == doctest::Approx(3.0).epsilon(1e-12));         // (2 + 4)/2 with ‖θ_t‖ = 1
  CHECK(m.rms_unit_gradient(0) == doctest::Approx(std::sqrt(10.0)).epsilon(1e-12));  // √((4 + 16)/2)
  CHECK_THROWS_AS(m.add(std::vector<train::WeightStep>(2)), InternalError);
}

TEST_CASE("rotation: measure's one step gives the hand-computed angle and ‖g‖/‖θ‖, and restores the state") {
  // SGD without momentum and decoupled WD: θ_{t+1} = θ_t − η(g + λθ_t), so the loss gradient is
  // g = (θ_t − θ_{t+1})/η − λθ_t, computed here from the two states alone.
  const NetworkSpec spec = bn_mlp();
  constexpr double kLr = 0.3, kWd = 0.05;
  OptimConfig oc;
  oc.kind = OptimizerKind::sgd;
  oc.sgd.momentum = 0.0;
  oc.reg.kind = Regularization::wd;
  oc.reg.weight_decay = kWd;
  ReferenceBackend<double> be(spec, init_params<double>(spec, 11, Init::glorot_uniform), oc, 1);
  const data::Dataset probe = probe_set();
  const auto before = be.state();
  const auto rows = train::measure_on_probe(be, probe, rotation_only(), kLr, 1, 0);
  // The state is restored: measure must not move the checkpoint's parameters.
  const auto restored = be.state();
  for (const char* w : {"fc0.weight", "fc1.weight"}) CHECK(restored.f64(w) == before.f64(w));

  // The same step again, by hand (no recording), on the same batch.
  std::vector<float> img(probe.images.begin(), probe.images.end());
  std::vector<std::int32_t> lab(probe.labels.begin(), probe.labels.end());
  (void)be.train_step(train::HostBatch{img, lab, kN}, kLr, 0);
  const auto after = be.state();
  for (const char* w : {"fc0.weight", "fc1.weight"}) {
    INFO(w);
    const auto a = before.f64(w), b = after.f64(w);
    double dot = 0, na = 0, nb = 0, g2 = 0, total2 = 0;
    for (std::size_t i = 0; i < a.size(); ++i) {
      dot += a[i] * b[i];
      na += a[i] * a[i];
      nb += b[i] * b[i];
      const double g = (a[i] - b[i]) / kLr - kWd * a[i];
      g2 += g * g;
      total2 += (a[i] - b[i]) * (a[i] - b[i]) / (kLr * kLr);
    }
    const double angle = std::acos(dot / std::sqrt(na * nb));
    MESSAGE(fmt::format("{}: rot {:.9g} (hand {:.9g}), grad_ratio {:.9g} (hand {:.9g})", w,
                        value(rows, fmt::format("rot.{}", w)), angle, value(rows, fmt::format("grad_ratio.{}", w)),
                        std::sqrt(g2 / na)));
    CHECK(angle > 1e-3);  // the step does rotate
    WDLAB_EXPECT_PASS(cmp(fmt::format("rot {}", w), value(rows, fmt::format("rot.{}", w)), angle, tol::Kind::exact_double));
    WDLAB_EXPECT_PASS(cmp(fmt::format("grad_ratio {}", w), value(rows, fmt::format("grad_ratio.{}", w)),
                          std::sqrt(g2 / na), tol::Kind::exact_double));
    // Negative control: the whole update (loss gradient plus decay) is not what grad_ratio holds.
    CHECK_FALSE(cmp("grad_ratio vs the update with WD", value(rows, fmt::format("grad_ratio.{}", w)),
                    std::sqrt(total2 / na), tol::Kind::exact_double).pass);
  }
  // Momentum 0, decoupled WD: rot_pred = √(2ηλ(1−α)/(1+α)) = √(2·0.3·0.05) = √0.03 for the
  // BN-followed fc0; the head fc1 is not scale-invariant: null (NaN in the row).
  WDLAB_EXPECT_PASS(cmp("rot_pred fc0", value(rows, "rot_pred.fc0.weight"), 0.17320508075688773, tol::Kind::exact_double));
  CHECK(std::isnan(value(rows, "rot_pred.fc1.weight")));
  CHECK(std::isnan(value(rows, "elr_pred.fc1.weight")));
}

TEST_CASE("rot_pred and elr_pred follow the equilibrium formulas, and no prediction is made where none applies") {
  // η = 0.1, λ = 0.005, α = β₁ = 0.9; digits from Python's math.sqrt:
  //   √(2ηλ/(1+α))       = 0.022941573387056175  (SGD + L2, Wan et al. 2021)
  //   √(2ηλ(1−α)/(1+α))  = 0.007254762501100116  (SGD + decoupled WD; AdamW, Kosson et al. 2024)
  using train::TensorDecay, train::ScaleInvariance;
  using optim::ElrForm, optim::RotationLaw;
  const train::WeightSummary l2{"w", 2.0, TensorDecay::l2, 0.005, ScaleInvariance::invariant};
  const train::WeightSummary wd{"w", 2.0, TensorDecay::wd, 0.005, ScaleInvariance::invariant};
  const train::OptimizerSummary sgd{ElrForm::momentum_sgd, RotationLaw::sgd_heavy_ball, 0.9, 0},
      adam{ElrForm::normalized, RotationLaw::adamw, 0.9, 0};
  WDLAB_EXPECT_PASS(cmp("SGD L2", *train::predicted_rotation(sgd, l2, 0.1), 0.022941573387056175, tol::Kind::exact_double));
  WDLAB_EXPECT_PASS(cmp("SGD WD", *train::predicted_rotation(sgd, wd, 0.1), 0.007254762501100116, tol::Kind::exact_double));
  WDLAB_EXPECT_PASS(cmp("AdamW", *train::predicted_rotation(adam, wd, 0.1), 0.007254762501100116, tol::Kind::exact_double));
  // elr_pred = rot_pred·√(1−α²)/‖g̃‖ with ‖g̃‖ = 0.5: 0.022941573387056175·√0.19/0.5 = 0.02 (exactly:
  // √(2ηλ(1−α))/‖g̃‖ = √(1e-4)/0.5).
  WDLAB_EXPECT_PASS(cmp("elr_pred SGD L2", *train::predicted_elr(sgd, l2, 0.1, 0.5), 0.02, tol::Kind::exact_double));
  // Negative controls: each assumption broken gives no prediction.
  CHECK_FALSE(train::predicted_rotation(adam, l2, 0.1));  // Adam with L2: the decay goes through √v
  CHECK_FALSE(train::predicted_rotation(optim::metric_forms(kfac_config()), wd, 0.1));
  CHECK_FALSE(train::predicted_rotation(optim::metric_forms(nesterov_config()), wd, 0.1));
  CHECK_FALSE(train::predicted_rotation(optim::metric_forms(lion_config()), wd, 0.1));  // none derived
  CHECK_FALSE(train::predicted_rotation(sgd, {"w", 2.0, TensorDecay::wd, 0.0, ScaleInvariance::invariant}, 0.1));
  CHECK_FALSE(train::predicted_rotation(sgd, {"w", 2.0, TensorDecay::none, 0.0, ScaleInvariance::invariant}, 0.1));
  CHECK_FALSE(train::predicted_rotation(sgd, {"w", 2.0, TensorDecay::wd, 0.005, ScaleInvariance::not_invariant}, 0.1));
  CHECK_FALSE(train::predicted_elr(adam, wd, 0.1, 0.5));  // η/‖θ‖² is SGD's form
  // The L2 and WD forms differ (by √(1−α)): a swap would show.
  CHECK_FALSE(cmp("L2 vs WD", *train::predicted_rotation(sgd, l2, 0.1), *train::predicted_rotation(sgd, wd, 0.1),
                  tol::Kind::exact_double).pass);
}

TEST_CASE("weight_scale_invariance: a weight whose only consumer is BN") {
  const NetworkSpec bn = bn_mlp();
  const NetworkSpec plain = zoo::mlp(Shape{kIn, 1, 1}, kClasses, {.depth = 1, .width = 4, .bias = Bias::off});
  CHECK(train::weight_scale_invariance(bn, 0) == train::ScaleInvariance::invariant);
  CHECK(train::weight_scale_invariance(bn, int(bn.layers.size()) - 1) == train::ScaleInvariance::not_invariant);
  CHECK(train::weight_scale_invariance(plain, 0) == train::ScaleInvariance::not_invariant);
}

TEST_CASE("rotation through the trainer's record: the mean of two steps' hand angles (SGD with momentum, L2)") {
  const NetworkSpec spec = bn_mlp();
  OptimConfig oc;
  oc.kind = OptimizerKind::sgd;
  oc.sgd.momentum = 0.5;
  oc.reg.kind = Regularization::l2;
  oc.reg.weight_decay = 0.01;
  ReferenceBackend<double> be(spec, init_params<double>(spec, 12, Init::glorot_uniform), oc, 1);
  const data::Dataset probe = probe_set();
  std::vector<float> img(probe.images.begin(), probe.images.end());
  std::vector<std::int32_t> lab(probe.labels.begin(), probe.labels.end());
  const train::HostBatch batch{img, lab, kN};
  be.record_weight_steps(train::WeightSteps::record);
  train::RotationMeter meter;
  double hand = 0;
  for (int k = 0; k < 2; ++k) {
    const auto a = be.state().f64("fc0.weight");
    const auto s = be.train_step(batch, 0.2, k);
    REQUIRE(s.weight_steps.size() == 2);  // fc0, fc1
    meter.add(s.weight_steps);
    const auto b = be.state().f64("fc0.weight");
    double dot = 0, na = 0, nb = 0;
    for (std::size_t i = 0; i < a.size(); ++i) {
      dot += a[i] * b[i];
      na += a[i] * a[i];
      nb += b[i] * b[i];
    }
    hand += std::acos(dot / std::sqrt(na * nb)) / 2;
  }
  be.record_weight_steps(train::WeightSteps::off);
  CHECK(be.train_step(batch, 0.2, 2).weight_steps.empty());  // off: nothing recorded
  train::MeasureRequest req;
  req.groups = train::parse_metric_groups("test", "rotation");
  req.lr = 0.2;
  const auto rows = train::rotation_rows(be.measure_summary(batch, req), meter, 0.2);
  WDLAB_EXPECT_PASS(cmp("mean rot fc0", value(rows, "rot.fc0.weight"), hand, tol::Kind::exact_double));
  // SGD + L2 with α = 0.5, η = 0.2, λ = 0.01: √(2·0.2·0.01/1.5) = 0.05163977794943222 (Python).
  WDLAB_EXPECT_PASS(cmp("rot_pred fc0", value(rows, "rot_pred.fc0.weight"), 0.05163977794943222, tol::Kind::exact_double));
  CHECK(std::isfinite(value(rows, "elr_pred.fc0.weight")));
  // Before any step (the epoch-0 row): rot, grad_ratio and elr_pred are null, rot_pred is not.
  const auto none = train::rotation_rows(be.measure_summary(batch, req), train::RotationMeter{}, 0.2);
  CHECK(std::isnan(value(none, "rot.fc0.weight")));
  CHECK(std::isnan(value(none, "grad_ratio.fc0.weight")));
  CHECK(std::isnan(value(none, "elr_pred.fc0.weight")));
  CHECK(value(none, "rot_pred.fc0.weight") == value(rows, "rot_pred.fc0.weight"));
}

// Optimizer configuration, learning-rate schedules and the regularization scope.
#include <doctest/doctest.h>

#include "common/train/measure.hpp"
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "common/errors.hpp"
#include "optim_test_util.hpp"
#include "reference/optim/optimizer.hpp"
#include "common/optim/schedule.hpp"

using namespace optim_test;

namespace {

/// Runs f, expects a UsageError whose message starts with `field: `.
template <class F>
void expect_usage_error(const std::string& field, F&& f) {
  bool thrown = false;
  try {
    f();
  } catch (const UsageError& e) {
    thrown = true;
    CHECK_MESSAGE(std::string(e.what()).rfind(field + ": ", 0) == 0, e.what());
  }
  CHECK_MESSAGE(thrown, "expected a UsageError naming " << field);
}

std::set<std::string> decayed_names(const NetworkSpec& spec, const RegConfig& reg) {
  std::set<std::string> out;
  for (const auto& p : spec.params())
    if (decays(p, spec, reg)) out.insert(p.name);
  return out;
}

}  // namespace

TEST_CASE("configs: defaults are the paper's and the official code's") {
  const OptimConfig c;
  CHECK(c.kind == OptimizerKind::sgd);
  CHECK(c.sgd.momentum == 0.9);
  CHECK(c.sgd.kind == MomentumKind::heavy_ball);
  CHECK(c.adam.beta1 == 0.9);
  CHECK(c.adam.beta2 == 0.999);
  CHECK(c.adam.eps == 1e-8);
  CHECK(c.kfac.damping == 1e-3);
  CHECK(c.kfac.t_cov == 10);
  CHECK(c.kfac.t_inv == 100);
  CHECK(c.kfac.cov_ema_decay == 0.95);
  CHECK(c.kfac.kl_clip == 0.0);
  CHECK(c.kfac.momentum == 0.9);
  CHECK(c.kfac.inverse == InverseMethod::cholesky);
  CHECK(c.kfac.factor_init == FactorInit::identity);
  CHECK(c.kfac.gn_probe_variance == 1.0);
  CHECK(c.reg.kind == Regularization::none);
  CHECK(c.reg.scope == WdScope::all);
  CHECK_NOTHROW(c.validate());
}

TEST_CASE("configs: validate() names the field at fault") {
  auto sgd = [](auto edit) { SgdConfig c; edit(c); c.validate(); };
  expect_usage_error("momentum", [&] { sgd([](SgdConfig& c) { c.momentum = 1.0; }); });
  expect_usage_error("momentum", [&] { sgd([](SgdConfig& c) { c.momentum = -0.1; }); });
  auto adam = [](auto edit) { AdamConfig c; edit(c); c.validate(); };
  expect_usage_error("beta1", [&] { adam([](AdamConfig& c) { c.beta1 = 1.0; }); });
  expect_usage_error("beta2", [&] { adam([](AdamConfig& c) { c.beta2 = NAN; }); });
  expect_usage_error("eps", [&] { adam([](AdamConfig& c) { c.eps = 0; }); });
  auto kfac = [](auto edit) { KfacConfig c; edit(c); c.validate(); };
  expect_usage_error("damping", [&] { kfac([](KfacConfig& c) { c.damping = -1e-3; }); });
  expect_usage_error("t_cov", [&] { kfac([](KfacConfig& c) { c.t_cov = 0; }); });
  expect_usage_error("t_inv", [&] { kfac([](KfacConfig& c) { c.t_inv = 0; }); });
  expect_usage_error("cov_ema_decay", [&] { kfac([](KfacConfig& c) { c.cov_ema_decay = 1.0; }); });
  expect_usage_error("kl_clip", [&] { kfac([](KfacConfig& c) { c.kl_clip = -1; }); });
  expect_usage_error("momentum", [&] { kfac([](KfacConfig& c) { c.momentum = 2; }); });
  expect_usage_error("gn_probe_variance", [&] { kfac([](KfacConfig& c) { c.gn_probe_variance = 0; }); });
  expect_usage_error("max_damping_raises", [&] { kfac([](KfacConfig& c) { c.max_damping_raises = -1; }); });
  auto reg = [](auto edit) { RegConfig c; edit(c); c.validate(); };
  expect_usage_error("weight_decay", [&] { reg([](RegConfig& c) { c.weight_decay = -1; }); });
  expect_usage_error("wd_params", [&] { reg([](RegConfig& c) { c.scope = WdScope::list; }); });
  expect_usage_error("wd_params", [&] { reg([](RegConfig& c) { c.wd_params = {"fc0.weight"}; }); });
  // OptimConfig validates the sub-config of its kind (and only that one) plus reg.
  OptimConfig c;
  c.kind = OptimizerKind::adam;
  c.sgd.momentum = 5;  // not read by Adam
  CHECK_NOTHROW(c.validate());
  c.kind = OptimizerKind::sgd;
  expect_usage_error("momentum", [&] { c.validate(); });
  c.kind = OptimizerKind::kfac_g;
  c.kfac.t_inv = -3;
  expect_usage_error("t_inv", [&] { c.validate(); });
}

TEST_CASE("configs: enum names round-trip through to_string/parse") {
  for (auto k : {OptimizerKind::sgd, OptimizerKind::adam, OptimizerKind::kfac_f, OptimizerKind::kfac_g})
    CHECK(parse_optimizer_kind("optimizer", to_string(k)) == k);
  for (auto r : {Regularization::none, Regularization::l2, Regularization::wd})
    CHECK(parse_regularization("weight_decay_type", to_string(r)) == r);
  for (auto s : {WdScope::all, WdScope::conv, WdScope::fc, WdScope::list})
    CHECK(parse_wd_scope("wd_scope", to_string(s)) == s);
  for (auto m : {MomentumKind::heavy_ball, MomentumKind::nesterov})
    CHECK(parse_momentum_kind("momentum_kind", to_string(m)) == m);
  for (auto m : {InverseMethod::cholesky, InverseMethod::eig})
    CHECK(parse_inverse_method("inverse", to_string(m)) == m);
  for (auto f : {FactorInit::identity, FactorInit::data_pass})
    CHECK(parse_factor_init("factor_init", to_string(f)) == f);
  for (auto k : {ScheduleKind::constant, ScheduleKind::step_epochs, ScheduleKind::step_iterations})
    CHECK(parse_schedule_kind("schedule", to_string(k)) == k);
  expect_usage_error("optimizer", [] { parse_optimizer_kind("optimizer", "lbfgs"); });
  expect_usage_error("wd_scope", [] { parse_wd_scope("wd_scope", "last"); });
}

TEST_CASE("schedule: constant, step by epochs and by iterations, at the boundaries") {
  const double eta0 = 0.1, gamma = 0.1;
  Schedule c{.kind = ScheduleKind::constant, .lr = eta0};
  CHECK(lr_at(c, 0, 391) == eta0);
  CHECK(lr_at(c, 10'000'000, 391) == eta0);

  // The paper: ×0.1 every 60 epochs; 391 iterations per epoch (⌈50000/128⌉).
  Schedule e{.kind = ScheduleKind::step_epochs, .lr = eta0, .gamma = gamma, .every_epochs = 60};
  const std::int64_t ipe = 391;
  struct Case { std::int64_t k; double expect; };
  for (const Case& t : {Case{0, eta0}, Case{60 * ipe - 1, eta0}, Case{60 * ipe, eta0 * gamma},
                        Case{120 * ipe - 1, eta0 * gamma}, Case{120 * ipe, eta0 * gamma * gamma},
                        Case{180 * ipe, eta0 * gamma * gamma * gamma}}) {
    const double got = lr_at(e, t.k, ipe);
    MESSAGE(fmt::format("step_epochs k={} lr={:.17g} expected {:.17g}", t.k, got, t.expect));
    CHECK(std::abs(got - t.expect) <= tol::of(tol::Kind::exact_double) * t.expect);
  }
  // The official K-FAC configs: decay_every_itr 16000.
  Schedule it{.kind = ScheduleKind::step_iterations, .lr = eta0, .gamma = gamma, .every_iterations = 16000};
  for (const Case& t : {Case{0, eta0}, Case{15999, eta0}, Case{16000, eta0 * gamma},
                        Case{31999, eta0 * gamma}, Case{32000, eta0 * gamma * gamma}}) {
    const double got = lr_at(it, t.k, ipe);
    MESSAGE(fmt::format("step_iterations k={} lr={:.17g} expected {:.17g}", t.k, got, t.expect));
    CHECK(std::abs(got - t.expect) <= tol::of(tol::Kind::exact_double) * t.expect);
  }
  // Linear warm-up over W = 100 iterations, on top of a step every 50 iterations.
  Schedule w{.kind = ScheduleKind::step_iterations, .lr = eta0, .gamma = 0.5, .every_iterations = 50,
             .warmup_iterations = 100};
  for (const Case& t : {Case{0, eta0 * 1 / 100.0}, Case{49, eta0 * 50 / 100.0},
                        Case{50, eta0 * 0.5 * 51 / 100.0}, Case{99, eta0 * 0.5},
                        Case{100, eta0 * 0.25}, Case{150, eta0 * 0.125}}) {
    const double got = lr_at(w, t.k, ipe);
    MESSAGE(fmt::format("warm-up k={} lr={:.17g} expected {:.17g}", t.k, got, t.expect));
    CHECK(std::abs(got - t.expect) <= tol::of(tol::Kind::exact_double) * t.expect);
  }
  expect_usage_error("gamma", [] { Schedule{.gamma = 0}.validate(); });
  expect_usage_error("lr", [] { Schedule{.lr = -1}.validate(); });
  expect_usage_error("every_epochs", [] { Schedule{.kind = ScheduleKind::step_epochs, .every_epochs = 0}.validate(); });
  expect_usage_error("every_iterations",
                     [] { Schedule{.kind = ScheduleKind::step_iterations, .every_iterations = 0}.validate(); });
  expect_usage_error("warmup_iterations", [] { Schedule{.warmup_iterations = -1}.validate(); });
}

TEST_CASE("scope: all / conv / fc / list, biases and BN select exactly the chosen tensors") {
  const NetworkSpec spec = mixed_spec();
  using Names = std::set<std::string>;
  const Names conv_w{"conv0.weight", "conv0.bias"}, conv_bn{"bn0.weight", "bn0.bias"};
  const Names fc_w{"fc0.weight", "fc0.bias", "fc1.weight", "fc1.bias"}, fc_bn{"bn1.weight", "bn1.bias"};
  auto join = [](std::initializer_list<Names> parts) {
    Names out;
    for (const auto& p : parts) out.insert(p.begin(), p.end());
    return out;
  };
  struct Case {
    const char* what;
    RegConfig reg;
    Names expect;
  };
  const auto wd = Regularization::wd;
  const std::vector<Case> cases = {
      {"none", {.kind = Regularization::none, .weight_decay = 1}, {}},
      {"all", {.kind = wd, .weight_decay = 1}, join({conv_w, conv_bn, fc_w, fc_bn})},
      {"all, no biases", {.kind = wd, .weight_decay = 1, .biases = DecayBiases::no},
       {"conv0.weight", "bn0.weight", "bn0.bias", "fc0.weight", "bn1.weight", "bn1.bias", "fc1.weight"}},
      {"all, no BN", {.kind = wd, .weight_decay = 1, .bn = DecayBn::no}, join({conv_w, fc_w})},
      {"conv", {.kind = wd, .weight_decay = 1, .scope = WdScope::conv}, join({conv_w, conv_bn})},
      {"conv, no BN", {.kind = wd, .weight_decay = 1, .scope = WdScope::conv, .bn = DecayBn::no}, conv_w},
      {"conv, no biases", {.kind = wd, .weight_decay = 1, .scope = WdScope::conv, .biases = DecayBiases::no},
       {"conv0.weight", "bn0.weight", "bn0.bias"}},
      {"fc", {.kind = Regularization::l2, .weight_decay = 1, .scope = WdScope::fc}, join({fc_w, fc_bn})},
      {"fc, no BN, no biases",
       {.kind = wd, .weight_decay = 1, .scope = WdScope::fc, .biases = DecayBiases::no, .bn = DecayBn::no},
       {"fc0.weight", "fc1.weight"}},
      {"list", {.kind = wd, .weight_decay = 1, .scope = WdScope::list, .wd_params = {"fc1.weight", "bn0.bias"}},
       {"fc1.weight", "bn0.bias"}},
  };
  for (const Case& c : cases) {
    CAPTURE(c.what);
    CHECK(decayed_names(spec, c.reg) == c.expect);
    // The same selection seen through an update: SGD without momentum, zero gradients and
    // decoupled decay moves exactly the chosen tensors (θ ← θ − ηβθ), running statistics never.
    if (c.reg.kind != Regularization::wd) continue;
    const auto p0 = filled<double>(spec, 3);
    auto p = p0;
    const OptimConfig cfg{.kind = OptimizerKind::sgd, .sgd = {.momentum = 0}, .reg = c.reg};
    auto opt = make_optimizer(cfg, spec, p);
    opt->step(p, p.zeros_like(), 0.1, 0);
    for (std::size_t i = 0; i < p.values.size(); ++i) {
      const bool chosen = c.expect.count(p.info[i].name) > 0;
      CHECK_MESSAGE(((p.values[i] - p0.values[i]).norm() > 0) == chosen, p.info[i].name);
      if (chosen) {
        const Mat<double> expect = p0.values[i] - 0.1 * (1.0 * p0.values[i]);
        CHECK(cmp(p.info[i].name, flat(p.values[i]), flat(expect), tol::Kind::exact_double).pass);
      }
    }
  }
  // A list naming an unknown tensor or a running statistic is a usage error.
  RegConfig bad{.kind = wd, .weight_decay = 1, .scope = WdScope::list, .wd_params = {"fc9.weight"}};
  expect_usage_error("wd_params", [&] { validate_scope(bad, spec); });
  bad.wd_params = {"bn0.running_mean"};
  expect_usage_error("wd_params", [&] { validate_scope(bad, spec); });
  const auto p = filled<double>(spec, 1);
  expect_usage_error("wd_params", [&] { make_optimizer(OptimConfig{.reg = bad}, spec, p); });
}

TEST_CASE("scope: a BN layer belongs to the layer it normalizes, even at 1×1") {
  // conv0 maps 4×4 to 1×1 (kernel 4, no padding); its BN is still conv-family, fc0's is fc.
  SpecBuilder b("bn-family", Shape{2, 4, 4}, 3);
  b.affine = wdlab::Affine::on;
  b.conv("conv0", 3, 4, 1, 0, Bias::off);
  b.batchnorm("bn0");
  b.relu();
  b.flatten();
  b.dense("fc0", 3, Bias::off);
  b.batchnorm("bn1");
  const NetworkSpec spec = b.finish();
  CHECK(scope_family(spec, 1) == ScopeFamily::conv);
  CHECK(scope_family(spec, 5) == ScopeFamily::fc);
  const RegConfig conv{.kind = Regularization::l2, .weight_decay = 1, .scope = WdScope::conv};
  CHECK(decayed_names(spec, conv) == std::set<std::string>{"conv0.weight", "bn0.weight", "bn0.bias"});
}

TEST_CASE("scope: the official 'last' is the dense layers of a zoo VGG and ResNet") {
  // The official weight_list "last" selects names containing "fc": the dense head.
  const auto vgg = zoo::vgg(11, Shape{3, 32, 32}, 10, {.width_mult = 0.125});
  const auto res = zoo::resnet(8, 1, Shape{3, 32, 32}, 10, {.width_mult = 0.5});
  const RegConfig fc{.kind = Regularization::wd, .weight_decay = 1, .scope = WdScope::fc};
  CHECK(decayed_names(vgg, fc) == std::set<std::string>{"classifier.weight", "classifier.bias"});
  CHECK(decayed_names(res, fc) == std::set<std::string>{"fc.weight", "fc.bias"});
  const RegConfig conv{.kind = Regularization::wd, .weight_decay = 1, .scope = WdScope::conv};
  for (const auto& p : res.params())
    if (p.trainable() && p.name.rfind("fc.", 0) != 0) CHECK_MESSAGE(decays(p, res, conv), p.name);
}

TEST_CASE("every optimizer kind has one spelling: to_string and parse_optimizer_kind invert each other") {
  // The config/CLI spelling, written out here rather than read from the code under test.
  const std::map<OptimizerKind, std::string> want{{OptimizerKind::sgd, "sgd"},
                                                  {OptimizerKind::adam, "adam"},
                                                  {OptimizerKind::kfac_f, "kfac-f"},
                                                  {OptimizerKind::kfac_g, "kfac-g"},
                                                  {OptimizerKind::lion, "lion"}};
  for (const OptimizerKind k : all_optimizer_kinds) {
    REQUIRE_MESSAGE(want.count(k), "a kind without its spelling in this test: " << to_string(k));
    CHECK(to_string(k) == want.at(k));
    CHECK(parse_optimizer_kind("optimizer", to_string(k)) == k);
  }
  CHECK(want.size() == all_optimizer_kinds.size());
  // The reference's old internal spelling is not a second config spelling.
  CHECK_THROWS_WITH_AS(parse_optimizer_kind("optimizer", "kfac_f"), doctest::Contains("kfac-f"), UsageError);
}

TEST_CASE("elr_opt: each optimizer's own effective learning rate, written out by kind") {
  // The row as train::metric_rows names it from the kind's summary (common/train/measure.cpp).
  const auto elr_opt = [](const OptimConfig& c, double lr, double w) {
    train::MeasureSummary s;
    s.weights.push_back(train::WeightSummary{"fc.weight", w});
    s.optimizer = metric_forms(c);
    train::MeasureRequest req;
    req.groups = train::MetricGroups{}.add(train::MetricGroup::elr);
    req.lr = lr;
    for (const auto& [name, v] : train::metric_rows(s, req))
      if (name == "elr_opt.fc.weight") return v;
    FAIL("no elr_opt row");
    return 0.0;
  };
  OptimConfig c;
  const double lr = 0.1, w = 2.0;
  c.kind = OptimizerKind::sgd;
  c.sgd.momentum = 0.9;
  CHECK(elr_opt(c, lr, w) == doctest::Approx(0.1 / (0.1 * 4.0)));  // η/((1−μ)‖W‖²)
  c.kind = OptimizerKind::adam;
  CHECK(elr_opt(c, lr, w) == doctest::Approx(0.05));  // η/‖W‖
  for (const auto k : {OptimizerKind::kfac_f, OptimizerKind::kfac_g}) {
    c.kind = k;
    c.kfac.momentum = 0.5;
    c.kfac.damping = 1e-2;
    CHECK(elr_opt(c, lr, w) == doctest::Approx(0.1 / (0.5 * 1e-2 * 4.0)));  // η/((1−μ)λ‖W‖²)
  }
  c.kind = OptimizerKind::lion;
  CHECK(elr_opt(c, lr, w) == doctest::Approx(0.05));  // η/‖W‖: sign(c) moves each coordinate by η
}

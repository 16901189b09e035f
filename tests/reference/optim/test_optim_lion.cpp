// Lion (reference/optim/lion.hpp): two steps against a scalar loop written here and against
// numbers worked by hand, sign(0) = 0, decoupled weight decay versus L2, and a negative control
// (the sign of an SGD-style momentum instead of the interpolation c gives other numbers).
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <cmath>

#include "common/errors.hpp"
#include "optim_test_util.hpp"
#include "reference/optim/lion.hpp"
#include "reference/optim/optimizer.hpp"

using namespace optim_test;

namespace {

constexpr double kLr[2] = {0.01, 0.005};  // η for steps 0 and 1 (a schedule changing in between)
constexpr double kBeta = 0.1;
constexpr double kB1 = 0.9, kB2 = 0.99;  // the paper's defaults

double sgn(double x) { return double((x > 0) - (x < 0)); }

enum class Interpolation { lion, momentum_first };  // momentum_first: the negative control

/// Two steps on every element as plain scalar loops (all trainable tensors decayed).
/// lion:            c = β₁m + (1−β₁)g; θ −= η(sign(c) [+ βθ]); m = β₂m + (1−β₂)g
/// momentum_first:  m = β₁m + (1−β₁)g; θ −= η(sign(m) [+ βθ])   (what Lion is not)
ParamStore<double> lion_by_hand(const ParamStore<double>& p0, const ParamStore<double> (&g)[2], Regularization reg,
                                Interpolation how = Interpolation::lion) {
  ParamStore<double> p = p0;
  for (std::size_t i = 0; i < p.values.size(); ++i) {
    if (!p.info[i].trainable()) continue;
    for (Eigen::Index j = 0; j < p.values[i].size(); ++j) {
      double th = p0.values[i].data()[j], m = 0;
      for (int s = 0; s < 2; ++s) {
        double gg = g[s].values[i].data()[j];
        if (reg == Regularization::l2) gg += kBeta * th;
        double dir;
        if (how == Interpolation::lion) {
          dir = sgn(kB1 * m + (1 - kB1) * gg);
          m = kB2 * m + (1 - kB2) * gg;
        } else {
          m = kB1 * m + (1 - kB1) * gg;
          dir = sgn(m);
        }
        if (reg == Regularization::wd) dir += kBeta * th;
        th -= kLr[s] * dir;
      }
      p.values[i].data()[j] = th;
    }
  }
  return p;
}

OptimConfig lion_cfg(Regularization reg) {
  return OptimConfig{.kind = OptimizerKind::lion, .reg = {.kind = reg, .weight_decay = reg == Regularization::none ? 0.0 : kBeta}};
}

ParamStore<double> two_steps(const OptimConfig& cfg, const NetworkSpec& spec, const ParamStore<double>& p0,
                             const ParamStore<double> (&g)[2]) {
  ParamStore<double> p = p0;
  auto opt = make_optimizer(cfg, spec, p);
  opt->step(p, g[0], kLr[0], 0);
  opt->step(p, g[1], kLr[1], 1);
  return p;
}

}  // namespace

TEST_CASE("Lion: two steps equal a scalar loop (none, l2, wd) but not the SGD-momentum variant") {
  const NetworkSpec spec = mlp_spec();
  const auto p0 = filled<double>(spec, 31);
  const ParamStore<double> g[2] = {filled<double>(spec, 32, 0.5), filled<double>(spec, 33, 0.5)};
  for (const auto reg : {Regularization::none, Regularization::l2, Regularization::wd}) {
    const auto got = two_steps(lion_cfg(reg), spec, p0, g);
    const auto c = cmp(fmt::format("lion {}", to_string(reg)), flat(got), flat(lion_by_hand(p0, g, reg)),
                       tol::Kind::exact_double);
    MESSAGE(c.line());
    CHECK(c.pass);
    // Negative control: the same comparison against the momentum-first variant fails.
    const auto wrong = cmp(fmt::format("lion {} vs momentum-first", to_string(reg)), flat(got),
                           flat(lion_by_hand(p0, g, reg, Interpolation::momentum_first)), tol::Kind::exact_double);
    MESSAGE(wrong.line());
    CHECK_FALSE(wrong.pass);
  }
}

TEST_CASE("Lion: one element worked by hand over two steps (wd)") {
  // θ = 1, g₁ = 0.5, g₂ = −0.2, η = 0.01 then 0.005, β = 0.1, β₁ = 0.9, β₂ = 0.99, m = 0:
  //  step 1: c = 0.1·0.5 = 0.05 > 0;  θ = 1 − 0.01·(1 + 0.1) = 0.989;  m = 0.01·0.5 = 0.005
  //  step 2: c = 0.9·0.005 + 0.1·(−0.2) = −0.0155 < 0;  θ = 0.989 − 0.005·(−1 + 0.0989) = 0.9935055
  //          m = 0.99·0.005 + 0.01·(−0.2) = 0.00295
  // The momentum-first variant has m = 0.05 after step 1, so step 2's sign is + (0.025): θ = 0.9835055.
  const NetworkSpec spec = mlp_spec();
  auto p = ParamStore<double>::zeros(spec);
  auto g1 = p.zeros_like(), g2 = p.zeros_like();
  const int w = p.find("fc0.weight");
  REQUIRE(w >= 0);
  p.values[w](0, 0) = 1.0;
  g1.values[w](0, 0) = 0.5;
  g2.values[w](0, 0) = -0.2;
  auto opt = make_optimizer(lion_cfg(Regularization::wd), spec, p);
  opt->step(p, g1, kLr[0], 0);
  CHECK(p.values[w](0, 0) == doctest::Approx(0.989).epsilon(1e-14));
  opt->step(p, g2, kLr[1], 1);
  CHECK(p.values[w](0, 0) == doctest::Approx(0.9935055).epsilon(1e-14));
  CHECK(p.values[w](0, 0) != doctest::Approx(0.9835055).epsilon(1e-6));  // not momentum-first
  double m = -1;
  for (const auto& [name, t] : opt->state())
    if (name == "optim.lion.exp_avg.fc0.weight") m = t(0, 0);
  CHECK(m == doctest::Approx(0.00295).epsilon(1e-14));
}

TEST_CASE("Lion: sign(0) = 0, so a zero gradient moves nothing but the decoupled decay") {
  const NetworkSpec spec = mlp_spec();
  const auto p0 = filled<double>(spec, 41);
  const auto zero = p0.zeros_like();
  for (const auto reg : {Regularization::none, Regularization::wd}) {
    CAPTURE(to_string(reg));
    auto p = p0;
    auto opt = make_optimizer(lion_cfg(reg), spec, p);
    opt->step(p, zero, kLr[0], 0);
    const double shrink = reg == Regularization::wd ? 1 - kLr[0] * kBeta : 1.0;  // θ − ηβθ
    int moved = 0, wrong = 0;
    for (std::size_t i = 0; i < p.values.size(); ++i)
      for (Eigen::Index j = 0; j < p.values[i].size(); ++j) {
        const double was = p0.values[i].data()[j], now = p.values[i].data()[j];
        moved += now != was;
        wrong += std::abs(now - shrink * was) > 1e-15 * std::abs(was);
      }
    CHECK(wrong == 0);
    CHECK((moved > 0) == (reg == Regularization::wd));  // the decay moves every nonzero θ
    for (const auto& [name, t] : opt->state()) CHECK(t.isZero(0.0));  // m = β₂·0 + (1−β₂)·0
  }
}

TEST_CASE("Lion: decoupled weight decay and L2 give different steps where βθ outweighs g") {
  // θ = 1, g = −0.01, β = 0.1, η = 0.01:
  //   l2: g' = −0.01 + 0.1 = 0.09, c > 0, θ = 1 − 0.01 = 0.99
  //   wd: c = 0.1·(−0.01) < 0, θ = 1 − 0.01·(−1 + 0.1) = 1.009
  const NetworkSpec spec = mlp_spec();
  auto p0 = ParamStore<double>::zeros(spec);
  auto g = p0.zeros_like();
  const int w = p0.find("fc1.weight");
  REQUIRE(w >= 0);
  p0.values[w](1, 2) = 1.0;
  g.values[w](1, 2) = -0.01;
  double after[2];
  int k = 0;
  for (const auto reg : {Regularization::l2, Regularization::wd}) {
    auto p = p0;
    auto opt = make_optimizer(lion_cfg(reg), spec, p);
    opt->step(p, g, kLr[0], 0);
    after[k++] = p.values[w](1, 2);
  }
  CHECK(after[0] == doctest::Approx(0.99).epsilon(1e-14));
  CHECK(after[1] == doctest::Approx(1.009).epsilon(1e-14));
  CHECK(after[0] != after[1]);
}

TEST_CASE("Lion: config spelling, defaults and bad betas") {
  CHECK(parse_optimizer_kind("optimizer", "lion") == OptimizerKind::lion);
  CHECK(to_string(OptimizerKind::lion) == std::string("lion"));
  const LionConfig d;
  CHECK(d.beta1 == 0.9);
  CHECK(d.beta2 == 0.99);
  OptimConfig c{.kind = OptimizerKind::lion};
  c.lion.beta1 = 1.0;
  CHECK_THROWS_WITH_AS(c.validate(), doctest::Contains("lion.beta1"), UsageError);
  c.lion.beta1 = 0.9;
  c.lion.beta2 = -0.1;
  CHECK_THROWS_WITH_AS(c.validate(), doctest::Contains("lion.beta2"), UsageError);
  c.kind = OptimizerKind::adam;  // Lion's settings are only checked for Lion
  CHECK_NOTHROW(c.validate());
}

// Checkpointing: state()/load_state() reproduce the next steps bit for bit, for every optimizer
// and both precisions; malformed state is rejected without touching the optimizer.
#include <doctest/doctest.h>

#include <map>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "common/errors.hpp"
#include "optim_test_util.hpp"
#include "reference/optim/optimizer.hpp"

using namespace optim_test;

namespace {

struct Named {
  const char* what;
  OptimConfig cfg;
};

std::vector<Named> configs() {
  std::vector<Named> out;
  out.push_back({"sgd heavy ball l2", {.kind = OptimizerKind::sgd,
                                       .reg = {.kind = Regularization::l2, .weight_decay = 0.1}}});
  out.push_back({"sgd nesterov wd", {.kind = OptimizerKind::sgd, .sgd = {.kind = MomentumKind::nesterov},
                                     .reg = {.kind = Regularization::wd, .weight_decay = 0.1}}});
  out.push_back({"adam wd", {.kind = OptimizerKind::adam,
                             .reg = {.kind = Regularization::wd, .weight_decay = 0.5}}});
  OptimConfig kf{.kind = OptimizerKind::kfac_f, .reg = {.kind = Regularization::wd, .weight_decay = 0.1}};
  kf.kfac.t_cov = 1;
  kf.kfac.t_inv = 2;
  kf.kfac.factor_init = FactorInit::data_pass;
  out.push_back({"kfac_f wd data-pass", kf});
  OptimConfig kg{.kind = OptimizerKind::kfac_g, .reg = {.kind = Regularization::l2, .weight_decay = 0.1}};
  kg.kfac.t_cov = 2;
  kg.kfac.t_inv = 3;
  kg.kfac.kl_clip = 1e-4;
  kg.kfac.inverse = InverseMethod::eig;
  out.push_back({"kfac_g l2 eig kl-clip", kg});
  out.push_back({"lion wd", {.kind = OptimizerKind::lion, .reg = {.kind = Regularization::wd, .weight_decay = 0.1}}});
  out.push_back({"lion l2 betas", {.kind = OptimizerKind::lion, .lion = {.beta1 = 0.8, .beta2 = 0.95},
                                   .reg = {.kind = Regularization::l2, .weight_decay = 0.1}}});
  return out;
}

template <class T>
void drive(Optimizer<T>& opt, const NetworkSpec& spec, ParamStore<T>& p, int from, int to) {
  for (int k = from; k < to; ++k) {
    opt.step(p, filled<T>(spec, 200 + k, 0.2), 0.05, k);
    if (opt.wants_factors(k)) opt.update_factors(random_stats<T>(spec, 300 + k), k);
  }
}

}  // namespace

TEST_CASE_TEMPLATE("state()/load_state() round-trip reproduces the next steps bit for bit", T, double, float) {
  const NetworkSpec spec = mixed_spec();
  for (const Named& n : configs()) {
    CAPTURE(n.what);
    auto p = filled<T>(spec, 7);
    auto a = make_optimizer(n.cfg, spec, p);
    if (a->wants_factor_init()) a->init_factors(random_stats<T>(spec, 8));
    drive(*a, spec, p, 0, 3);
    const auto saved_state = a->state();
    const auto saved_params = p;
    drive(*a, spec, p, 3, 6);  // crosses a factor update and an inverse update for K-FAC

    auto b = make_optimizer(n.cfg, spec, saved_params);
    // Entries outside "optim." (say, the parameters of a checkpoint) are ignored.
    auto with_params = saved_state;
    with_params.emplace_back("fc0.weight", saved_params.at("fc0.weight"));
    b->load_state(with_params);
    CHECK_FALSE(b->wants_factor_init());
    auto q = saved_params;
    drive(*b, spec, q, 3, 6);
    const auto c = cmp(fmt::format("{} ({}) resumed vs uninterrupted", n.what, sizeof(T) == 8 ? "double" : "float"),
                       flat(q), flat(p), bitwise);
    const auto cs = cmp(std::string(n.what) + " state after", flat_state(b->state()), flat_state(a->state()), bitwise);
    MESSAGE(c.line() << "\n" << cs.line());
    CHECK(c.pass);
    CHECK(cs.pass);
    for (double x : flat(p)) REQUIRE(std::isfinite(x));

    // Negative control: without the state the continuation differs.
    auto fresh = make_optimizer(n.cfg, spec, saved_params);
    if (fresh->wants_factor_init()) fresh->init_factors(random_stats<T>(spec, 8));
    auto r = saved_params;
    drive(*fresh, spec, r, 3, 6);
    CHECK(cmp("fresh optimizer (must differ)", flat(r), flat(p), bitwise).rel_fro > 0);
  }
}

TEST_CASE("state names are under optim. and follow the documented scheme") {
  const NetworkSpec spec = mixed_spec();
  const auto p = filled<double>(spec, 1);
  auto names = [&](const OptimConfig& c) {
    std::vector<std::string> out;
    for (const auto& [name, m] : make_optimizer(c, spec, p)->state()) out.push_back(name);
    return out;
  };
  auto has = [](const std::vector<std::string>& v, const std::string& s) {
    return std::find(v.begin(), v.end(), s) != v.end();
  };
  const auto s = names({.kind = OptimizerKind::sgd});
  CHECK(has(s, "optim.momentum.conv0.weight"));
  CHECK(has(s, "optim.momentum.bn0.weight"));
  CHECK_FALSE(has(s, "optim.momentum.bn0.running_mean"));
  CHECK(s.size() == 10);  // one buffer per trainable tensor (running statistics have none)
  const auto a = names({.kind = OptimizerKind::adam});
  CHECK(has(a, "optim.adam.m.fc1.bias"));
  CHECK(has(a, "optim.adam.v.fc1.bias"));
  CHECK(has(a, "optim.adam.t"));
  const auto k = names({.kind = OptimizerKind::kfac_f});
  for (const char* layer : {"conv0", "fc0", "fc1"})
    for (const char* f : {"A", "S", "A_inv", "S_inv", "damping"})
      CHECK_MESSAGE(has(k, fmt::format("optim.kfac.{}.{}", f, layer)), f << " " << layer);
  CHECK(has(k, "optim.kfac.initialized"));
  CHECK(has(k, "optim.kfac.inverses_ready"));
  CHECK(has(k, "optim.momentum.bn1.bias"));
  for (const auto* v : {&s, &a, &k})
    for (const auto& n : *v) CHECK(n.rfind("optim.", 0) == 0);
}

TEST_CASE("load_state rejects a missing entry, a wrong shape or another optimizer's state, atomically") {
  const NetworkSpec spec = mixed_spec();
  auto p = filled<double>(spec, 1);
  const OptimConfig cfg{.kind = OptimizerKind::adam};
  auto opt = make_optimizer(cfg, spec, p);
  opt->step(p, filled<double>(spec, 2), 0.1, 0);
  const auto good = opt->state();
  const auto before = flat_state(opt->state());

  auto missing = good;
  missing.erase(missing.begin() + 3);
  CHECK_THROWS_AS(opt->load_state(missing), DataError);
  auto shape = good;
  shape[0].second = Mat<double>::Zero(2, 2);
  CHECK_THROWS_AS(opt->load_state(shape), DataError);
  auto extra = good;
  extra.emplace_back("optim.momentum.fc0.weight", Mat<double>::Zero(4, 48));
  CHECK_THROWS_AS(opt->load_state(extra), DataError);
  auto bad_t = good;
  for (auto& [name, m] : bad_t)
    if (name == "optim.adam.t") m(0, 0) = 1.5;
  CHECK_THROWS_AS(opt->load_state(bad_t), DataError);
  CHECK(cmp("state unchanged after failed loads", flat_state(opt->state()), before, bitwise).pass);

  auto sgd = make_optimizer(OptimConfig{.kind = OptimizerKind::sgd}, spec, p);
  CHECK_THROWS_AS(sgd->load_state(good), DataError);
  auto kfac = make_optimizer(OptimConfig{.kind = OptimizerKind::kfac_f}, spec, p);
  CHECK_THROWS_AS(kfac->load_state(sgd->state()), DataError);
}

TEST_CASE("the interface checks its inputs: layouts, learning rate, factor calls on first-order optimizers") {
  const NetworkSpec spec = mlp_spec();
  auto p = filled<double>(spec, 1);
  // Optimizer::name() is written into meta.json's backend line and state messages: K-FAC's keeps
  // its underscore (runs of earlier releases), whatever the config spelling is.
  const std::map<OptimizerKind, std::string> names{{OptimizerKind::sgd, "sgd"},       {OptimizerKind::adam, "adam"},
                                                   {OptimizerKind::kfac_f, "kfac_f"}, {OptimizerKind::kfac_g, "kfac_g"},
                                                   {OptimizerKind::lion, "lion"}};
  for (auto kind : all_optimizer_kinds) {
    CAPTURE(to_string(kind));
    auto opt = make_optimizer(OptimConfig{.kind = kind}, spec, p);
    REQUIRE(names.count(kind));
    CHECK(opt->name() == names.at(kind));
    auto g = p.zeros_like();
    g.values[0] = Mat<double>::Zero(2, 2);
    CHECK_THROWS_AS(opt->step(p, g, 0.1, 0), InternalError);
    CHECK_THROWS_AS(opt->step(p, p.zeros_like(), NAN, 0), InternalError);
    CHECK_THROWS_AS(opt->step(p, p.zeros_like(), 0.1, -1), InternalError);
    if (!is_kfac(kind)) {
      CHECK_FALSE(opt->wants_factors(9));
      CHECK_THROWS_AS(opt->init_factors(random_stats<double>(spec, 3)), InternalError);
      CHECK_THROWS_AS(opt->update_factors(random_stats<double>(spec, 3), 9), InternalError);
    }
  }
  // Params of another network are refused at construction.
  CHECK_THROWS_AS(make_optimizer(OptimConfig{}, mixed_spec(), p), InternalError);
}

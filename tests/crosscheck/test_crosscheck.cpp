// The crosscheck machinery through its library: the registry covers every layer kind, float32
// against double passes at the float tolerances, a perturbed side fails on exactly the perturbed
// tensor, the exact mode matches bit for bit (and a 1e-12 change fails it), coverage names what
// has no case.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <set>

#include "apps/crosscheck/case_data.hpp"
#include "apps/crosscheck/cases.hpp"
#include "apps/crosscheck/report.hpp"
#include "apps/crosscheck/side.hpp"

using namespace wdlab;
using namespace wdlab::xcheck;

namespace {

struct Outcome {
  Summary sum;
  std::vector<Line> lines;
};

/// An optimizer case with no network, for compare_tensors on tensors written by the test.
Case synthetic_step_case(optim::OptimizerKind kind) {
  Case c;
  c.kind = CaseKind::optimizer;
  c.name = "synthetic " + optim::to_string(kind);
  c.lr = 1e-3;
  c.optim.kind = kind;
  return c;
}

Outcome run_cases(const std::vector<Case>& cases, Side& a, Side& b) {
  Outcome o;
  for (const auto& c : cases) {
    std::string why = a.unsupported(c);
    if (why.empty()) why = b.unsupported(c);
    std::vector<Line> ls;
    if (!why.empty()) {
      ls.push_back(unsupported_line(c, why));
    } else {
      const auto d = make_case_data(c);
      ls = compare_tensors(c, a.run(c, d), b.run(c, d), a.precision(), b.precision());
    }
    for (auto& l : ls) {
      o.sum.add(l);
      o.lines.push_back(std::move(l));
    }
  }
  return o;
}

/// Every line of evidence, for the log of a failing check.
std::string dump(const Outcome& o, bool failures_only = true) {
  std::string s;
  for (const auto& l : o.lines)
    if (!failures_only || l.status != Status::pass) s += format_line(l) + "\n";
  return s;
}

Selection layers_only() {
  Selection s;
  s.layers = true;
  return s;
}

}  // namespace

TEST_CASE("registry: every LayerKind has a case alone, every integer-arithmetic kind an exact case") {
  const auto cases = registry(layers_only());
  Selection ex;
  ex.input = InputKind::small_integer;
  const auto exact = registry(ex);
  std::set<std::string> names;
  for (const auto& c : cases) CHECK_MESSAGE(names.insert(c.name).second, "duplicate case " << c.name);
  for (LayerKind k : all_layer_kinds) {
    int alone = 0, exact_n = 0;
    for (const auto& c : cases) alone += c.kind == CaseKind::layer && c.layer == k;
    for (const auto& c : exact) exact_n += c.kind == CaseKind::layer && c.layer == k;
    CHECK_MESSAGE(alone > 0, to_string(k));
    CHECK_MESSAGE((exact_n > 0) == exact_capable(k), to_string(k));
  }
  // Geometries: stride 2, padding 0 and 1, 1×1 and 3×3, batch 1 among the convs.
  bool s2 = false, p0 = false, p1 = false, k1 = false, k3 = false, n1 = false;
  for (const auto& c : cases) {
    if (c.kind != CaseKind::layer || c.layer != LayerKind::conv2d) continue;
    const Layer& l = c.spec.layers[0];
    s2 |= l.stride == 2;
    p0 |= l.pad == 0;
    p1 |= l.pad == 1;
    k1 |= l.kernel == 1;
    k3 |= l.kernel == 3;
    n1 |= c.batch == 1;
  }
  CHECK((s2 && p0 && p1 && k1 && k3 && n1));
  // Whole networks and optimizers build.
  Selection nets;
  nets.networks = network_names();
  nets.width_mult = 0.125;
  CHECK(registry(nets).size() == network_names().size());
  nets.optimizers = optimizer_names();
  CHECK(registry(nets).size() == network_names().size() * optimizer_names().size());
  nets.networks = {"no-such-net"};
  CHECK_THROWS_AS(registry(nets), UsageError);
}

TEST_CASE("registry: every CaseKind, LossKind and InputKind has its own name and at least one case") {
  // Layers and losses, the networks alone, the networks under every optimizer, the exact mode:
  // together they must hold every value of each enum's list (not a copy of it).
  Selection nets;
  nets.networks = {"mlp"};
  nets.width_mult = 0.01;
  Selection steps = nets;
  steps.optimizers = optimizer_names();
  Selection exact;
  exact.input = InputKind::small_integer;
  std::vector<Case> all;
  for (const Selection& s : {layers_only(), nets, steps, exact})
    for (auto& c : registry(s)) all.push_back(std::move(c));
  std::set<std::string> names;
  for (CaseKind k : all_case_kinds) {
    CHECK_MESSAGE(names.insert(to_string(k)).second, to_string(k));
    CHECK_MESSAGE(std::count_if(all.begin(), all.end(), [&](const Case& c) { return c.kind == k; }) > 0, to_string(k));
  }
  for (LossKind k : all_loss_kinds) {
    CHECK_MESSAGE(names.insert(to_string(k)).second, to_string(k));
    CHECK_MESSAGE(std::count_if(all.begin(), all.end(), [&](const Case& c) { return c.kind == CaseKind::loss && c.loss == k; }) == 1,
                  to_string(k));
  }
  for (InputKind k : all_input_kinds) {
    CHECK_MESSAGE(names.insert(to_string(k)).second, to_string(k));
    CHECK_MESSAGE(std::count_if(all.begin(), all.end(), [&](const Case& c) { return c.input == k; }) > 0, to_string(k));
  }
  CHECK(names.count("?") == 0);
}

TEST_CASE("report: every Status has its own name and its own count in the summary") {
  std::set<std::string> names;
  Summary sum;
  int n = 0;
  for (Status st : all_statuses) {
    CHECK_MESSAGE(names.insert(to_string(st)).second, to_string(st));
    Line l;
    l.status = st;
    for (int i = 0; i <= n; ++i) sum.add(l);  // 1, 2, 3, ... lines: each count is its own
    ++n;
  }
  CHECK(names.count("?") == 0);
  CHECK(sum.pass == 1);
  CHECK(sum.fail == 2);
  CHECK(sum.missing == 3);
  CHECK(sum.unsupported == 4);
  CHECK(sum.pass + sum.fail + sum.missing + sum.unsupported == n * (n + 1) / 2);
}

TEST_CASE("float32 against double passes on every layer case at the float tolerances") {
  auto a = make_side("reference-double");
  auto b = make_side("reference-float");
  const auto o = run_cases(registry(layers_only()), *a, *b);
  INFO(dump(o));
  CHECK(o.sum.failures() == 0);
  CHECK(o.sum.pass > 100);
  // The comparisons are not vacuous: float32 differs from double somewhere.
  double worst = 0;
  for (const auto& l : o.lines) worst = std::max(worst, l.rel_fro);
  CHECK(worst > 0);
}

TEST_CASE("float32 against double passes on small whole networks (pass, K-FAC statistics, inverses, metrics)") {
  Selection s;
  s.networks = {"mlp-bn", "vgg16-bn", "resnet32x4"};
  s.width_mult = 1.0 / 16;
  s.batch = 4;
  auto a = make_side("reference-double");
  auto b = make_side("reference-float");
  const auto o = run_cases(registry(s), *a, *b);
  INFO(dump(o));
  CHECK(o.sum.failures() == 0);
  std::set<Quantity> seen;
  for (const auto& l : o.lines) seen.insert(l.quantity);
  for (Quantity q : kAllQuantities)  // all but the after-N-steps ones (optimizer cases)
    if (q != Quantity::params_after && q != Quantity::optimizer_state) CHECK_MESSAGE(seen.count(q) == 1, to_string(q));
}

TEST_CASE("float32 against double passes after 2 steps of every optimizer") {
  Selection s;
  s.networks = {"mlp-bn", "resnet32x4-bn"};
#if defined(__SANITIZE_ADDRESS__)
  // Under ASan at -O1 the ResNet case takes minutes (5 s without): the sanitized pass checks memory
  // safety on the MLP, the plain pass checks the numbers on both.
  s.networks = {"mlp-bn"};
#endif
  s.optimizers = optimizer_names();
  s.width_mult = 1.0 / 16;
  s.batch = 4;
  s.steps = 2;
  auto a = make_side("reference-double");
  auto b = make_side("reference-float");
  const auto o = run_cases(registry(s), *a, *b);
  INFO(dump(o));
  CHECK(o.sum.failures() == 0);
  int state = 0, params = 0;
  for (const auto& l : o.lines) {
    state += l.quantity == Quantity::optimizer_state;
    params += l.quantity == Quantity::params_after;
  }
  CHECK(state > 0);
  CHECK(params > 0);
}

TEST_CASE("negative control: a side perturbed by 1e-3 fails on exactly the perturbed tensors") {
  auto cases = registry(layers_only());
  std::erase_if(cases, [](const Case& c) { return c.name.rfind("conv2d 3x3 s2 p1", 0) != 0; });
  REQUIRE(cases.size() == 1);
  auto a = make_side("reference-double");
  auto b = make_perturbed(make_side("reference-float"), "grad conv.weight", 1e-3);
  const auto o = run_cases(cases, *a, *b);
  INFO(dump(o, false));
  REQUIRE(o.sum.fail == 1);
  for (const auto& l : o.lines) {
    if (l.tensor == "grad conv.weight") {
      CHECK(l.status == Status::fail);
      CHECK(l.rel_fro > l.tol);
      const std::string line = format_line(l);
      CHECK(line.rfind("FAIL", 0) == 0);
      CHECK(line.find("perturbed element") != std::string::npos);
    } else {
      CHECK(l.status == Status::pass);
    }
  }
}

TEST_CASE("a tensor side b lacks is MISSING, a case it cannot run UNSUPPORTED: both fail") {
  Selection s;
  s.networks = {"mlp"};
  s.width_mult = 0.01;
  s.batch = 2;
  auto a = make_side("reference-double");
  auto direct = make_side("direct");
  const auto o = run_cases(registry(s), *a, *direct);
  CHECK(o.sum.unsupported == 1);
  CHECK(o.sum.failures() == 1);
  CHECK(format_line(o.lines.at(0)).rfind("UNSUPPORTED", 0) == 0);

  const Case c = registry(layers_only()).at(0);
  const auto d = make_case_data(c);
  auto ta = a->run(c, d), tb = a->run(c, d);
  tb.pop_back();
  const auto lines = compare_tensors(c, ta, tb, Precision::float64, Precision::float64);
  CHECK(lines.back().status == Status::missing);
}

TEST_CASE("exact mode: the engine and the direct loops agree bit for bit on integer inputs") {
  Selection ex;
  ex.input = InputKind::small_integer;
  const auto cases = registry(ex);
  auto a = make_side("reference-double");
  auto b = make_side("direct");
  const auto o = run_cases(cases, *a, *b);
  INFO(dump(o));
  CHECK(o.sum.failures() == 0);
  CHECK(o.sum.pass > 50);
  for (const auto& l : o.lines) {
    CHECK(l.tol_kind == tol::Kind::exact_integer);
    CHECK(l.rel_fro == 0);
  }
  // The inputs really are integers (so every sum is exact), and a 1e-12 change fails.
  const auto d = make_case_data(cases.at(0));
  for (double v : d.batches[0].x) CHECK(v == std::floor(v));
  auto bp = make_perturbed(make_side("direct"), "fwd", 1e-12);
  const auto p = run_cases({cases.at(0)}, *a, *bp);
  CHECK(p.sum.fail == 1);
}

TEST_CASE("exact mode in float32: the float engine matches the double oracle bit for bit on integer inputs") {
  // The argument that lets a float32 side (reference-float here, cuda on a GPU) run the exact
  // mode: every sum is an integer below 2^24, exact in any order. K-FAC factors divide by N*T.
  Selection ex;
  ex.input = InputKind::small_integer;
  const auto cases = registry(ex);
  for (const auto& c : cases) CHECK_MESSAGE(integer_sum_bound(c) < kFloat32ExactIntegers, c.name);
  auto a = make_side("reference-double");
  auto b = make_side("reference-float");
  const auto o = run_cases(cases, *a, *b);
  INFO(dump(o));
  CHECK(o.sum.failures() == 0);
  int exact_lines = 0, factor_lines = 0;
  for (const auto& l : o.lines) {
    if (l.quantity == Quantity::kfac_factor) {
      ++factor_lines;
      CHECK(l.tol_kind == tol::Kind::float32_op);
    } else {
      ++exact_lines;
      CHECK(l.tol_kind == tol::Kind::exact_integer);
      CHECK(l.rel_fro == 0);
    }
  }
  CHECK(exact_lines > 50);
  CHECK(factor_lines > 0);
  // Controls: one float ulp-sized change (1e-7) fails an exact line; a case whose sums can
  // reach 2^24 is recognised (dense with 2^18 inputs: 64*(2^18+1) > 2^24).
  auto bp = make_perturbed(make_side("reference-float"), "fwd", 1e-7);
  CHECK(run_cases({cases.at(0)}, *a, *bp).sum.fail == 1);
  Case big = cases.at(0);
  big.spec.layers.at(0).kind = LayerKind::dense;
  big.spec.layers.at(0).in = Shape{1 << 18, 1, 1};
  big.spec.layers.at(0).out = Shape{4, 1, 1};
  CHECK(integer_sum_bound(big) >= kFloat32ExactIntegers);
}

TEST_CASE("coverage: lists every kind, and what has no case") {
  auto cases = registry(layers_only());
  auto lines = coverage(cases);
  auto has = [&](const std::string& needle) {
    for (const auto& l : lines)
      if (l.find(needle) != std::string::npos) return true;
    return false;
  };
  for (LayerKind k : all_layer_kinds) CHECK(has(to_string(k)));
  CHECK(has("metric    jac_norm, jac_norm_est NO CASE (no optimizer case selected)"));
  CHECK(has("metric    gen_gap                NO CASE: test loss - train loss"));
  CHECK(has("optimizer kfac-g                 NO CASE"));  // no optimizer case in this registry
  std::erase_if(cases, [](const Case& c) { return c.kind == CaseKind::layer && c.layer == LayerKind::maxpool; });
  lines = coverage(cases);
  CHECK(has("layer     maxpool                NO CASE alone"));
}

TEST_CASE("tolerance table: every kind has a name, a reason and a positive value except exact_integer") {
  for (tol::Kind k : tol::all_kinds) {  // the enum's list, not the table's own entries
    const auto& e = tol::entry(k);
    INFO(tol::name(k));
    CHECK(e.kind == k);
    CHECK(!e.reason.empty());
    CHECK(tol::name(k) != "?");
    CHECK((e.value > 0 || k == tol::Kind::exact_integer));
  }
}

TEST_CASE("tolerance rows: a K-FAC step's delta and momentum carry the inverse's error, SGD/Adam the steps row") {
  // Why: delta = −η·update, and a relative error is the same for update and η·update, so the
  // K-FAC optimizer case's deltas inherit the damped inverse's error (float32 against double on
  // `wdlab crosscheck --network mlp --optimizer kfac-g`: up to 4.6e-4), which float32_steps was
  // never meant to bound.
  Selection sel;
  sel.networks = {"mlp", "mlp-bn"};
  sel.optimizers = {"sgd", "adam", "kfac-f", "kfac-g"};
  sel.width_mult = 0.125;
  int checked = 0;
  for (const Case& c : registry(sel)) {
    if (c.kind != CaseKind::optimizer) continue;
    CAPTURE(c.name);
    const bool bn = c.name.find("mlp-bn") != std::string::npos;
    const bool kfac = c.name.find("kfac") != std::string::npos;
    for (const Quantity q : {Quantity::params_after, Quantity::optimizer_state, Quantity::metric}) {
      const tol::Kind k = tolerance_kind(c, q, Precision::float64, Precision::float32);
      if (bn) CHECK(k == tol::Kind::float32_backward_bn);
      else if (kfac) CHECK(k == tol::Kind::float32_inverse);
      else CHECK(k == tol::Kind::float32_steps);
    }
    // Both sides double: exact whatever the optimizer (control: the rows above are float rows).
    CHECK(tolerance_kind(c, Quantity::params_after, Precision::float64, Precision::float64) == tol::Kind::exact_double);
    ++checked;
  }
  CHECK(checked == 8);
}

TEST_CASE("Lion deltas: a few coordinates a whole step apart (sign flips) pass, many fail, and only for Lion") {
  // A sign update moves each coordinate by exactly lr: where c is at rounding level the float
  // side may step the other way (a difference of 2·lr). float32_sign_flips allows 1e-4 of them.
  const Case c = synthetic_step_case(optim::OptimizerKind::lion);
  const std::size_t n = 20000;  // 1e-4 · n = 2 flips allowed
  Tensor a{"delta fc.weight", Quantity::params_after, {std::int64_t(n)}, std::vector<double>(n), ""};
  for (std::size_t i = 0; i < n; ++i) a.data[i] = (i % 2 ? -1.0 : 1.0) * c.lr;
  const auto with_flips = [&](std::size_t k) {
    Tensor b = a;
    for (std::size_t i = 0; i < k; ++i) b.data[i * 997 % n] *= -1;  // that coordinate stepped the other way
    return b;
  };
  const auto run = [&](const Case& cs, std::size_t k) {
    const auto lines = compare_tensors(cs, {a}, {with_flips(k)}, Precision::float64, Precision::float32);
    REQUIRE(lines.size() == 1);
    MESSAGE(format_line(lines[0]));
    return lines[0].status;
  };
  CHECK(run(c, 0) == Status::pass);
  CHECK(run(c, 1) == Status::pass);
  CHECK(run(c, 2) == Status::pass);
  CHECK(run(c, 3) == Status::fail);     // more flips than rounding explains
  CHECK(run(c, 2000) == Status::fail);  // a wrong sign rule
  Case sgd = c;
  sgd.optim.kind = optim::OptimizerKind::sgd;
  CHECK(run(sgd, 1) == Status::fail);  // control: no other optimizer gets the allowance
}

TEST_CASE("float32 deltas: the parameters' storage rounding is allowed on top of the steps row, nothing more") {
  // One SGD step of relative size 1e-4 on weights of size ~0.1: the float32 side stores
  // θ₁ = fl(θ₀ + d), so its delta fl(θ₀ + d) − θ₀ differs from d by up to 2⁻²⁴|θ₁| per element,
  // ~6e-4 relative to d: more than float32_steps alone, and nothing to do with the step.
  const Case c = synthetic_step_case(optim::OptimizerKind::sgd);
  const std::size_t n = 4096;
  std::vector<float> theta0(n), theta1(n);
  Tensor exact{"delta conv.weight", Quantity::params_after, {std::int64_t(n)}, std::vector<double>(n), ""};
  double norm1 = 0;
  for (std::size_t i = 0; i < n; ++i) {
    theta0[i] = float(0.05 + 0.1 * double((i * 37) % 101) / 101.0) * (i % 3 ? 1.0f : -1.0f);
    exact.data[i] = 1e-4 * 0.1 * std::sin(double(i));  // the step in exact arithmetic
    theta1[i] = float(double(theta0[i]) + exact.data[i]);
    norm1 += double(theta1[i]) * double(theta1[i]);
  }
  io::SafetensorsFile st;
  st.tensors["conv.weight"] = io::Tensor::from_f32({std::int64_t(n)}, theta1);
  Tensors initial{Tensor{"conv.weight", Quantity::param_grad, {std::int64_t(n)}, {theta0.begin(), theta0.end()}, ""}};
  const Tensors after = tensors_after_steps(st, initial, 1);
  REQUIRE(after.size() == 1);
  CHECK(after[0].name == "delta conv.weight");
  // The allowance, computed here from its definition: 1 step · 2⁻²⁴ · max(‖θ₀‖, ‖θ₁‖).
  double norm0 = 0;
  for (float v : theta0) norm0 += double(v) * double(v);
  CHECK(after[0].rounding == doctest::Approx(std::ldexp(1.0, -24) * std::sqrt(std::max(norm0, norm1))).epsilon(1e-12));
  const auto status = [&](const Tensor& b) {
    const auto lines = compare_tensors(c, {exact}, {b}, Precision::float64, Precision::float32);
    REQUIRE(lines.size() == 1);
    MESSAGE(format_line(lines[0]));
    return lines[0];
  };
  const Line with = status(after[0]);
  CHECK(with.status == Status::pass);
  CHECK(with.rel_fro > tol::of(tol::Kind::float32_steps));  // the rounding alone exceeds the row
  Tensor no_allowance = after[0];
  no_allowance.rounding = 0;
  CHECK(status(no_allowance).status == Status::fail);  // control: without it the same delta fails
  Tensor wrong = after[0];
  for (std::size_t i = 0; i < n; ++i) wrong.data[i] *= 1.01;  // a 1 % error in the step (a bug)
  CHECK(status(wrong).status == Status::fail);
  // A double state carries no allowance.
  io::SafetensorsFile st64;
  std::vector<double> t64(theta1.begin(), theta1.end());
  st64.tensors["conv.weight"] = io::Tensor::from_f64({std::int64_t(n)}, t64);
  CHECK(tensors_after_steps(st64, initial, 1)[0].rounding == 0);
}

TEST_CASE("storage rounding allowances: only a float32 side's deltas and rotation angles carry one") {
  Selection s;
  s.networks = {"mlp"};
  s.optimizers = {"sgd"};
  s.width_mult = 1.0 / 16;
  s.batch = 4;
  s.steps = 2;
  const auto cases = registry(s);
  REQUIRE(cases.size() == 1);
  const auto d = make_case_data(cases[0]);
  const auto tf = make_side("reference-float")->run(cases[0], d);
  const auto td = make_side("reference-double")->run(cases[0], d);
  int deltas = 0, angles = 0;
  for (const auto& t : tf) {
    CAPTURE(t.name);
    if (t.name.rfind("delta ", 0) == 0) {
      ++deltas;
      CHECK(t.rounding > 0);
    } else if (t.name.rfind("metric rot.", 0) == 0) {
      ++angles;
      CHECK(t.rounding == std::ldexp(1.0, -24));
    } else {
      CHECK(t.rounding == 0);
    }
  }
  CHECK(deltas > 0);
  CHECK(angles > 0);
  for (const auto& t : td) CHECK(t.rounding == 0);  // the double side's storage is the reference
}

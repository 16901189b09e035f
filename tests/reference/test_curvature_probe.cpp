// Where the curvature metrics are measured (common/train/measure.hpp, docs/curvature-probes.md):
// metrics.probe_split (train | test) picks the probe set, metrics.curvature_bn (eval | batch) the
// BN statistics of the curvature passes. Expected values come from independent code: the
// softmax's exact underflow for the collapsed Fisher, per-example backward passes combined by
// linearity for the batch-BN traces.
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <cmath>

#include "common/errors.hpp"
#include "common/model_zoo.hpp"
#include "common/philox.hpp"
#include "common/train/epoch_metrics.hpp"
#include "common/train/trainer.hpp"
#include "reference/backend.hpp"
#include "reference/net/metrics.hpp"

using namespace wdlab;
using namespace wdlab::ref;
using namespace wdlab::optim;

namespace {

constexpr int kIn = 5, kClasses = 3, kN = 8;

/// kN examples of kIn inputs: direction u_n (a fixed Gaussian) times `scale`.
data::Dataset scaled_set(const std::string& name, double scale) {
  data::Dataset d;
  d.name = name;
  d.channels = kIn;
  d.height = d.width = 1;
  d.num_classes = kClasses;
  for (int n = 0; n < kN; ++n) {
    for (int i = 0; i < kIn; ++i)
      d.images.push_back(float(scale * rng::normal(7, rng::Purpose::synthetic, 0, std::uint64_t(n * kIn + i))));
    d.labels.push_back(n % kClasses);
  }
  return d;
}

double value(const train::NamedValues& vals, const std::string& key) {
  for (const auto& [k, v] : vals)
    if (k == key) return v;
  FAIL("missing " << key);
  return 0.0;
}

train::MetricsOptions options(train::ProbeSplit split, train::CurvatureBn bn) {
  train::MetricsOptions m;
  m.groups = train::parse_metric_groups("test", "trace");
  m.probe = kN;
  m.probe_split = split;
  m.curvature_bn = bn;
  return m;
}

}  // namespace

TEST_CASE("probe_split: the training-probe Fisher of a network that fits its probe set exactly is 0, the test probe's is not") {
  // A bias-free ReLU MLP is positively homogeneous, f(c·x) = c·f(x). The training examples are
  // the test examples' directions times 1e9: their logit gaps exceed 745, exp underflows to 0,
  // softmax is one-hot (the network "fits" them with labels = argmax) and H = diag(p) − ppᵀ = 0
  // exactly. The test examples (×0.1) have p near uniform, so H ≠ 0. 32 hidden units: no example
  // has all of them off (its logits would be 0 and p uniform at any scale).
  const NetworkSpec spec = zoo::mlp(Shape{kIn, 1, 1}, kClasses, {.depth = 1, .width = 32, .bias = Bias::off});
  ReferenceBackend<double> be(spec, init_params<double>(spec, 3, Init::glorot_uniform), OptimConfig{}, 1);
  train::Datasets data;
  data.train = scaled_set("train", 1e9);
  data.test = scaled_set("test", 1e-1);
  for (train::CurvatureBn bn : {train::CurvatureBn::eval, train::CurvatureBn::batch}) {
    INFO("curvature_bn " << train::to_string(bn));
    const auto opt_train = options(train::ProbeSplit::train, bn), opt_test = options(train::ProbeSplit::test, bn);
    CHECK(&train::probe_source(data, train::ProbeSplit::train) == &data.train);
    CHECK(&train::probe_source(data, train::ProbeSplit::test) == &data.test);
    const auto on_train = train::measure_on_probe(be, train::probe_source(data, opt_train.probe_split), opt_train, 0.1, 1, 0);
    const auto on_test = train::measure_on_probe(be, train::probe_source(data, opt_test.probe_split), opt_test, 0.1, 1, 0);
    for (const char* w : {"fc0.weight", "fc1.weight"}) {
      INFO(w);
      const double f_train = value(on_train, fmt::format("fisher_trace.{}", w));
      const double f_test = value(on_test, fmt::format("fisher_trace.{}", w));
      const double g_train = value(on_train, fmt::format("gn_trace.{}", w));
      // ~0: p_k of the runner-up classes is exp(−gap) with gaps of hundreds or more (at most
      // ~1e-289 remains where a gap is near the underflow limit), against O(1) on the test probe.
      CHECK(f_train >= 0.0);
      CHECK(f_train <= 1e-200 * f_test);
      CHECK(value(on_train, fmt::format("fisher_trace_exact.{}", w)) <= 1e-200 * f_test);
      CHECK(f_test > 1e-6);
      // Negative control: the GN trace has no H, it does not collapse on the training probe.
      CHECK(g_train > 1e-6);
      CHECK(f_train <= 1e-200 * g_train);
    }
  }
}

TEST_CASE("curvature_bn: without BN eval and batch coincide, with BN, batch = signed per-example passes through batch statistics") {
  const train::MetricsOptions base = options(train::ProbeSplit::train, train::CurvatureBn::eval);
  const data::Dataset probe = scaled_set("probe", 1.0);
  for (Norm norm : {Norm::none, Norm::batchnorm}) {
    const NetworkSpec spec = zoo::mlp(Shape{kIn, 1, 1}, kClasses, {.depth = 1, .width = 6, .bias = Bias::off, .norm = norm});
    const ParamStore<double> params = init_params<double>(spec, 5, Init::glorot_uniform);
    ReferenceBackend<double> be(spec, params, OptimConfig{}, 1);
    train::MetricsOptions eval = base, batch = base;
    batch.curvature_bn = train::CurvatureBn::batch;
    eval.groups = batch.groups = train::parse_metric_groups("test", "trace,gn");
    const auto ve = train::measure_on_probe(be, probe, eval, 0.1, 11, 4);
    const auto vb = train::measure_on_probe(be, probe, batch, 0.1, 11, 4);
    if (norm == Norm::none) {
      REQUIRE(ve.size() == vb.size());
      for (std::size_t i = 0; i < ve.size(); ++i) {
        INFO(ve[i].first);
        CHECK(vb[i].first == ve[i].first);
        CHECK(vb[i].second == doctest::Approx(ve[i].second).epsilon(1e-12));  // s_n² = 1, no coupling
      }
      continue;
    }
    // Independent batch-mode traces of fc0 (no bias): tr A = (1/N) Σ_n ‖x_n‖²; tr S from N·K
    // backward passes, pass (m, j) with only example m's cotangent B_m e_j, combined as
    // g_n^(j) = Σ_m s_m g_n^(m,j) (linearity), tr S = (1/N) Σ_j Σ_n ‖g_n^(j)‖².
    Mat<double> x(kIn, kN);
    for (int n = 0; n < kN; ++n)
      for (int i = 0; i < kIn; ++i) x(i, n) = double(probe.images[std::size_t(n * kIn + i)]);
    const auto fw = network_forward(spec, params, x, BnMode::train);
    const int fc0 = params.info[params.find("fc0.weight")].layer;
    const Mat<double> z = fw.logits();
    for (OutputMetric metric : {OutputMetric::gauss_newton, OutputMetric::fisher}) {
      const bool fisher = metric == OutputMetric::fisher;
      double tr_s = 0;
      for (int j = 0; j < kClasses; ++j) {
        Mat<double> g = Mat<double>::Zero(6, kN);
        for (int m = 0; m < kN; ++m) {
          Mat<double> c = Mat<double>::Zero(kClasses, kN);
          if (fisher) {  // √p_j (e_j − p), p = softmax(z_m)
            const Eigen::VectorXd e = (z.col(m).array() - z.col(m).maxCoeff()).exp();
            const Eigen::VectorXd pm = e / e.sum();
            c.col(m) = -std::sqrt(pm(j)) * pm;
            c(j, m) += std::sqrt(pm(j));
          } else {
            c(j, m) = 1;
          }
          const double s = rng::uniform(11, rng::Purpose::curvature_sign, 4, std::uint64_t(m)) < 0.5 ? -1.0 : 1.0;
          g += s * network_backward(spec, params, fw, c).d_out[std::size_t(fc0)];
        }
        tr_s += g.squaredNorm() / kN;
      }
      const double tr_a = x.squaredNorm() / kN;
      double w2 = params.at("fc0.weight").squaredNorm();
      const std::string key = fmt::format("{}_trace.fc0.weight", fisher ? "fisher" : "gn");
      INFO(key);
      CHECK(value(vb, key) == doctest::Approx(w2 * tr_a * tr_s).epsilon(1e-10));
      // The modes differ with BN (running statistics at their initial 0 and 1 vs the batch's).
      CHECK(std::abs(value(vb, key) - value(ve, key)) > 1e-3 * std::abs(value(vb, key)));
    }
  }
}

TEST_CASE("probe_split and curvature_bn spellings, a bad value names the field") {
  CHECK(train::parse_probe_split("f", "train") == train::ProbeSplit::train);
  CHECK(train::parse_probe_split("f", "test") == train::ProbeSplit::test);
  CHECK(train::parse_curvature_bn("f", "eval") == train::CurvatureBn::eval);
  CHECK(train::parse_curvature_bn("f", "batch") == train::CurvatureBn::batch);
  for (auto s : {train::ProbeSplit::train, train::ProbeSplit::test})
    CHECK(train::parse_probe_split("f", train::to_string(s)) == s);
  for (auto m : {train::CurvatureBn::eval, train::CurvatureBn::batch})
    CHECK(train::parse_curvature_bn("f", train::to_string(m)) == m);
  try {
    train::parse_probe_split("metrics.probe_split", "val");
    FAIL("accepted 'val'");
  } catch (const UsageError& e) {
    CHECK(std::string(e.what()).find("metrics.probe_split") != std::string::npos);
  }
  CHECK_THROWS_AS(train::parse_curvature_bn("metrics.curvature_bn", "train"), UsageError);
  // The defaults of a new config: the training split, BN as K-FAC sees it.
  const train::MetricsOptions m;
  CHECK(m.probe_split == train::ProbeSplit::train);
  CHECK(m.curvature_bn == train::CurvatureBn::batch);
}

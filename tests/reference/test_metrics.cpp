// The mechanism metrics (reference/net/metrics.hpp) against independent code: the theory
// suite's MLP, explicit Jacobians and curvature matrices, finite differences, explicit Kronecker
// matrices, the paper's identities (Lemma 2), and negative controls where an identity must fail.
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <cmath>
#include <set>
#include <string>

#include <Eigen/Eigenvalues>

#include "../support/expect_pass.hpp"
#include "../support/small_mlp.hpp"
#include "common/compare.hpp"
#include "common/errors.hpp"
#include "common/model_zoo.hpp"
#include "common/philox.hpp"
#include "common/train/measure.hpp"
#include "reference/backend.hpp"
#include "reference/mlp/curvature.hpp"
#include "reference/mlp/jacobian.hpp"
#include "reference/mlp/mlp.hpp"
#include "reference/net/metrics.hpp"
#include "reference/optim/kfac.hpp"

using namespace wdlab;
using namespace wdlab::ref;
using namespace wdlab::optim;
using wdlab::test::span_of;

namespace {

Mat<double> gaussian(int rows, int cols, std::uint64_t seed) {
  Mat<double> m(rows, cols);
  for (Eigen::Index i = 0; i < m.size(); ++i) m.data()[i] = rng::normal(seed, rng::Purpose::synthetic, 0, i);
  return m;
}

Comparison cmp(const std::string& name, double x, double ref, tol::Kind k) {
  return compare(name, std::span<const double>(&x, 1), std::span<const double>(&ref, 1), k);
}

/// The same MLP as an engine network (NetworkSpec + ParamStore) and as the theory suite's
/// independent MlpSpec/MlpParams (no BN: both evaluate it identically in any mode).
struct TwinMlp {
  NetworkSpec spec;
  ParamStore<double> p;
  MlpSpec ms;
  MlpParams<double> mp;
};

TwinMlp twin_mlp(int depth, Activation act, Bias bias, std::uint64_t seed) {
  TwinMlp t;
  t.spec = zoo::mlp(Shape{5, 1, 1}, 3, {.depth = depth, .width = 6, .activation = act, .bias = bias});
  t.ms = MlpSpec{.input_dim = 5, .depth = depth, .width = 6, .output_dim = 3, .activation = act, .bias = bias};
  t.p = init_params<double>(t.spec, seed, Init::glorot_uniform);
  for (int l = 0; l <= depth; ++l) {
    const std::string fc = fmt::format("fc{}", l);
    if (bias == Bias::on) t.p.at(fc + ".bias") = gaussian(int(t.p.at(fc + ".bias").rows()), 1, seed + 50 + l) * 0.3;
    t.mp.W.push_back(t.p.at(fc + ".weight"));
    if (bias == Bias::on) t.mp.b.push_back(t.p.at(fc + ".bias"));
  }
  return t;
}

double mean_sq_logits(const NetworkSpec& spec, const ParamStore<double>& p, const Mat<double>& x) {
  return network_forward(spec, p, x, BnMode::eval).logits().squaredNorm() / double(x.cols());
}

/// T·(A ⊗ S) as a dense matrix (block (i, j) = T·A_ij·S), built element by element.
Mat<double> explicit_kron(const Mat<double>& A, const Mat<double>& S, int T) {
  Mat<double> K(A.rows() * S.rows(), A.cols() * S.cols());
  for (Eigen::Index i = 0; i < A.rows(); ++i)
    for (Eigen::Index j = 0; j < A.cols(); ++j)
      for (Eigen::Index a = 0; a < S.rows(); ++a)
        for (Eigen::Index b = 0; b < S.cols(); ++b) K(i * S.rows() + a, j * S.cols() + b) = T * A(i, j) * S(a, b);
  return K;
}

Mat<double> random_spd(int n, std::uint64_t seed) {
  const Mat<double> G = gaussian(n, n + 2, seed);
  return G * G.transpose() / double(n);
}

}  // namespace

TEST_CASE("jac_norm equals the mean squared Frobenius norm of the explicit input Jacobian (theory MLP, forward mode)") {
  for (Activation act : {Activation::relu, Activation::linear}) {
    const TwinMlp t = twin_mlp(2, act, Bias::on, 3);
    const Mat<double> x = gaussian(5, 9, 4);
    double explicit_sq = 0;
    for (const auto& J : jacobian_x(t.ms, t.mp, x, JacobianMethod::forward_mode)) explicit_sq += J.squaredNorm() / 9.0;
    const auto gp = output_pass(t.spec, t.p, x, OutputMetric::gauss_newton, InputGrad::compute);
    WDLAB_EXPECT_PASS(cmp(fmt::format("jac_norm {} MLP", to_string(act)), gp.jac_norm, explicit_sq, tol::Kind::exact_double));
    // Negative control: without the input gradient the pass reports 0, which must not pass.
    const auto skip = output_pass(t.spec, t.p, x, OutputMetric::gauss_newton, InputGrad::skip);
    CHECK_FALSE(cmp("jac_norm without input gradients", skip.jac_norm, explicit_sq, tol::Kind::exact_double).pass);
  }
}

TEST_CASE("jac_norm through eval-mode BN, conv and max-pool equals central differences (tiny VGG11 with BN)") {
  const NetworkSpec spec = zoo::vgg(11, Shape{2, 8, 8}, 3, {.norm = Norm::batchnorm, .width_mult = 1.0 / 32});
  auto p = init_params<double>(spec, 7, Init::glorot_uniform);
  for (std::size_t i = 0; i < p.values.size(); ++i) {  // running statistics away from (0, 1)
    if (p.info[i].role == ParamRole::running_mean) p.values[i] = gaussian(int(p.values[i].rows()), 1, 70 + i) * 0.1;
    if (p.info[i].role == ParamRole::running_var)
      p.values[i] = (gaussian(int(p.values[i].rows()), 1, 90 + i).array().abs() + 0.5).matrix();
  }
  const int N = 3;
  const Mat<double> x = gaussian(spec.input.size(), N, 8);
  // Eval mode: example n's logits depend on x_n alone, so perturbing input i of every example at
  // once gives column n = ∂f(x_n)/∂x_{i,n}.
  const double h = 1e-6;
  double fd_sq = 0;
  for (Eigen::Index i = 0; i < x.rows(); ++i) {
    Mat<double> xp = x, xm = x;
    xp.row(i).array() += h;
    xm.row(i).array() -= h;
    const Mat<double> d = (network_forward(spec, p, xp, BnMode::eval).logits() -
                           network_forward(spec, p, xm, BnMode::eval).logits()) / (2 * h);
    fd_sq += d.squaredNorm() / N;
  }
  const auto gp = output_pass(spec, p, x, OutputMetric::gauss_newton, InputGrad::compute);
  WDLAB_EXPECT_PASS(cmp("jac_norm VGG11-BN (eval) vs central differences", gp.jac_norm, fd_sq, tol::Kind::finite_difference));
}

TEST_CASE("jac_norm_est is unbiased for jac_norm (Rademacher and Gaussian probes), with the power to see a 10% bias") {
  const TwinMlp t = twin_mlp(2, Activation::relu, Bias::on, 5);
  const Mat<double> x = gaussian(5, 4, 6);
  const double exact = output_pass(t.spec, t.p, x, OutputMetric::gauss_newton, InputGrad::compute).jac_norm;
  const double zmax = tol::of(tol::Kind::monte_carlo_z);
  for (auto dist : {train::ProbeDistribution::rademacher, train::ProbeDistribution::gaussian}) {
    const auto est = jacobian_norm_estimates(t.spec, t.p, x, 2000, dist, 11, 2);
    double mean = 0, var = 0;
    for (double e : est) mean += e / double(est.size());
    for (double e : est) var += (e - mean) * (e - mean) / double(est.size() - 1);
    const double se = std::sqrt(var / double(est.size()));
    const double z = (mean - exact) / se, z_biased = (mean - 1.1 * exact) / se;
    MESSAGE(fmt::format("{}: exact {:.6g}, mean of {} estimates {:.6g} ± {:.2g} (z = {:.2f}); against 1.1·exact z = {:.2f}; "
                        "|z| tolerance {}", train::to_string(dist), exact, est.size(), mean, se, z, z_biased, zmax));
    CHECK(std::abs(z) < zmax);
    CHECK(std::abs(z_biased) > zmax);  // negative control: a 10% bias is visible
  }
}

TEST_CASE("K-FAC GN norm equals (L+1)·E|f|^2 on deep linear nets and differs for ReLU nets (Lemma 2)") {
  const Mat<double> x = gaussian(5, 8, 12);
  for (int depth : {1, 2, 3}) {
    for (Activation act : {Activation::linear, Activation::relu}) {
      const TwinMlp t = twin_mlp(depth, act, Bias::off, 20 + depth);
      const auto gp = output_pass(t.spec, t.p, x, OutputMetric::gauss_newton, InputGrad::skip);
      const double f2 = mean_sq_logits(t.spec, t.p, x);
      const auto c = cmp(fmt::format("kfac_gn_norm vs (L+1)E|f|^2, {} L={}", to_string(act), depth),
                         kfac_norm(t.spec, t.p, gp.layers), (depth + 1) * f2, tol::Kind::exact_double);
      MESSAGE(c.line());
      if (act == Activation::linear) CHECK(c.pass);
      else CHECK_FALSE(c.pass);  // the Kronecker factorization needs linearity (8e-4 to 0.2 here)
      // The exact GN norm is (L+1)²E|f|² for both (Lemma 2, first line).
      WDLAB_EXPECT_PASS(cmp(fmt::format("gn_norm vs (L+1)^2 E|f|^2, {} L={}", to_string(act), depth), gp.theta_norm,
                            (depth + 1) * (depth + 1) * f2, tol::Kind::exact_double));
    }
  }
}

TEST_CASE("gn_norm, theta^T F theta and the exact block traces equal the theory code's explicit G and F (biases on)") {
  const TwinMlp t = twin_mlp(2, Activation::relu, Bias::on, 31);
  const Mat<double> x = gaussian(5, 6, 32);
  const Vec<double> theta = t.mp.flatten();
  const Mat<double> G = gauss_newton(jacobian_theta(t.ms, t.mp, x, JacobianMethod::backprop));
  const Mat<double> F = fisher_exact_ce(t.ms, t.mp, x);
  const auto gp = output_pass(t.spec, t.p, x, OutputMetric::gauss_newton, InputGrad::skip);
  const auto fp = output_pass(t.spec, t.p, x, OutputMetric::fisher, InputGrad::skip);
  WDLAB_EXPECT_PASS(cmp("gn_norm vs theta^T G theta", gp.theta_norm, theta.dot(G * theta), tol::Kind::exact_double));
  WDLAB_EXPECT_PASS(cmp("Fisher-Rao norm vs theta^T F theta", fp.theta_norm, theta.dot(F * theta), tol::Kind::exact_double));
  for (int l = 0; l <= 2; ++l) {
    WDLAB_EXPECT_PASS(cmp(fmt::format("exact GN trace fc{}", l), gp.layers[l].exact_trace,
                          layer_block(t.ms, G, l).trace(), tol::Kind::exact_double));
    WDLAB_EXPECT_PASS(cmp(fmt::format("exact Fisher trace fc{}", l), fp.layers[l].exact_trace,
                          layer_block(t.ms, F, l).trace(), tol::Kind::exact_double));
  }
  // Negative control: the GN and Fisher norms of a trained-looking net are different numbers.
  CHECK_FALSE(cmp("GN vs Fisher norm", gp.theta_norm, fp.theta_norm, tol::Kind::exact_double).pass);
}

TEST_CASE("exact output factors equal the theory MLP's K-FAC factors (gn_exact, fisher_exact), and so do the K-FAC norms") {
  const TwinMlp t = twin_mlp(2, Activation::relu, Bias::on, 41);
  const Mat<double> x = gaussian(5, 7, 42);
  for (auto [metric, kind] : {std::pair{OutputMetric::gauss_newton, KfacCurvature::gn_exact},
                              std::pair{OutputMetric::fisher, KfacCurvature::fisher_exact}}) {
    const auto pass = output_pass(t.spec, t.p, x, metric, InputGrad::skip);
    const auto mf = kfac_factors(t.ms, t.mp, x, kind);
    for (int l = 0; l <= 2; ++l) {
      WDLAB_EXPECT_PASS(compare(fmt::format("A fc{}", l), span_of(pass.layers[l].factors.A), span_of(mf[l].A),
                                tol::Kind::exact_double));
      WDLAB_EXPECT_PASS(compare(fmt::format("S fc{}", l), span_of(pass.layers[l].factors.S), span_of(mf[l].S),
                                tol::Kind::exact_double));
    }
    WDLAB_EXPECT_PASS(cmp("K-FAC norm engine vs theory MLP", kfac_norm(t.spec, t.p, pass.layers),
                          kfac_norm(t.ms, t.mp, mf), tol::Kind::exact_double));
  }
}

TEST_CASE("trace via the factors equals the explicit Kronecker block's trace, and the exact trace on deep linear nets only") {
  const Mat<double> x = gaussian(5, 8, 52);
  for (Activation act : {Activation::linear, Activation::relu}) {
    const TwinMlp t = twin_mlp(2, act, Bias::on, 51);
    const auto gp = output_pass(t.spec, t.p, x, OutputMetric::gauss_newton, InputGrad::skip);
    for (int l = 0; l <= 2; ++l) {
      const auto& f = gp.layers[l].factors;
      WDLAB_EXPECT_PASS(cmp(fmt::format("T tr(A) tr(S) vs tr(A (x) S) fc{}", l), kfac_trace(f),
                            explicit_kron(f.A, f.S, 1).trace(), tol::Kind::exact_double));
      // GN factors are exact for linear nets (∂f/∂s constant), not for ReLU nets' hidden layers.
      const auto c = cmp(fmt::format("K-FAC vs exact GN trace, {} fc{}", to_string(act), l), kfac_trace(f),
                         gp.layers[l].exact_trace, tol::Kind::exact_double);
      MESSAGE(c.line());
      if (act == Activation::linear || l == 2) CHECK(c.pass);  // the output layer: ∂f/∂s = I
      else CHECK(c.rel_fro > 1e-3);
    }
  }
}

TEST_CASE("damping_fraction counts the eigenvalues of the explicit block T(A (x) S) above lambda") {
  for (int T : {1, 3}) {
    const Mat<double> A = random_spd(4, 60 + T), S = random_spd(3, 70 + T);
    const Eigen::VectorXd ev =
        Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd>(explicit_kron(A, S, T), Eigen::EigenvaluesOnly).eigenvalues();
    for (double q : {0.1, 0.5, 0.9}) {  // λ between eigenvalues: at quantile q of the spectrum
      std::vector<double> sorted(ev.data(), ev.data() + ev.size());
      const std::size_t k = std::size_t(q * double(sorted.size()));
      const double lambda = 0.5 * (sorted[k] + sorted[k - 1]);
      double above = 0;
      for (double e : sorted) above += e > lambda;
      const double frac = damping_fraction(A, S, T, lambda);
      MESSAGE(fmt::format("T={} λ={:.4g}: damping_fraction {} explicit {}", T, lambda, frac, above / double(ev.size())));
      CHECK(frac == above / double(ev.size()));
    }
  }
}

TEST_CASE("the backend's effective learning rates and damping follow their formulas (SGD, Adam, K-FAC)") {
  const NetworkSpec spec = zoo::mlp(Shape{5, 1, 1}, 3, {.depth = 1, .width = 4, .bias = Bias::on, .norm = Norm::batchnorm});
  const auto params = init_params<double>(spec, 81, Init::glorot_uniform);
  const Mat<float> xf = gaussian(5, 6, 82).cast<float>();
  std::vector<float> img(xf.data(), xf.data() + xf.size());
  std::vector<std::int32_t> lab{0, 1, 2, 0, 1, 2};
  const train::HostBatch batch{img, lab, 6};
  // Factors from a data pass (not the identity), λ inside their spectra: damping_frac is a count
  // strictly between 0 and 1 for at least one block, so a wrong count shows.
  constexpr double kLambda = 0.01;
  int interior = 0;
  for (OptimizerKind kind : {OptimizerKind::sgd, OptimizerKind::adam, OptimizerKind::kfac_g}) {
    OptimConfig oc;
    oc.kind = kind;
    oc.sgd.momentum = 0.8;
    oc.kfac.momentum = 0.7;
    oc.kfac.damping = kLambda;
    oc.kfac.factor_init = FactorInit::data_pass;
    ReferenceBackend<double> be(spec, params, oc, 1);
    if (be.wants_factor_init()) {
      be.accumulate_factor_init(batch, 0);
      be.finish_factor_init();
    }
    for (int k = 0; k < 10; ++k) be.train_step(batch, 0.05, k);  // K-FAC: one factor update (T_cov 10)
    train::MeasureRequest req;
    req.groups = train::parse_metric_groups("test", "norms,elr,damping");
    req.lr = 0.2;
    const auto vals = be.measure(batch, req);
    auto value = [&](const std::string& key) {
      for (const auto& [k, v] : vals)
        if (k == key) return v;
      FAIL("missing " << key);
      return 0.0;
    };
    const auto st = be.state();  // weights in PyTorch order: an independent read of ‖W‖
    for (const char* w : {"fc0.weight", "fc1.weight"}) {
      double n2 = 0;
      for (double v : st.f64(w)) n2 += v * v;
      WDLAB_EXPECT_PASS(cmp(fmt::format("norm {}", w), value(fmt::format("norm.{}", w)), std::sqrt(n2), tol::Kind::exact_double));
      WDLAB_EXPECT_PASS(cmp(fmt::format("elr {}", w), value(fmt::format("elr.{}", w)), 0.2 / n2, tol::Kind::exact_double));
      const double own = kind == OptimizerKind::sgd ? 0.2 / (0.2 * n2)
                         : kind == OptimizerKind::adam ? 0.2 / std::sqrt(n2) : 0.2 / (0.3 * kLambda * n2);
      WDLAB_EXPECT_PASS(cmp(fmt::format("elr_opt {} {}", to_string(kind), w), value(fmt::format("elr_opt.{}", w)), own,
                            tol::Kind::exact_double));
      if (kind == OptimizerKind::kfac_g) {
        WDLAB_EXPECT_PASS(cmp(fmt::format("damping_eff {}", w), value(fmt::format("damping_eff.{}", w)), kLambda * n2,
                              tol::Kind::exact_double));
        const auto& kf = dynamic_cast<const Kfac<double>&>(be.optimizer());
        for (int b = 0; b < kf.num_blocks(); ++b) {
          const auto v = kf.block(b);
          if (be.params().info[be.params().slots[v.layer].weight].name != w) continue;
          const Eigen::VectorXd ev = Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd>(
              explicit_kron(v.A, v.S, v.locations), Eigen::EigenvaluesOnly).eigenvalues();
          const double frac = double((ev.array() > kLambda).count()) / double(ev.size());
          MESSAGE(fmt::format("damping_frac {}: {} (explicit {})", w, value(fmt::format("damping_frac.{}", w)), frac));
          CHECK(value(fmt::format("damping_frac.{}", w)) == frac);
          interior += frac > 0 && frac < 1;
        }
      } else {
        for (const auto& [k, v] : vals) CHECK(k.rfind("damping", 0) != 0);  // K-FAC only
      }
    }
  }
  CHECK(interior >= 1);
}

TEST_CASE("wn rescaling sets the norms exactly and leaves predictions unchanged (BN with eps = 0), in train and eval mode") {
  NetworkSpec spec = zoo::vgg(11, Shape{2, 8, 8}, 3, {.norm = Norm::batchnorm, .bias = Bias::on, .width_mult = 1.0 / 32});
  for (auto& l : spec.layers) l.bn_eps = 0.0;  // exact scale invariance (MATH.md §5)
  auto p = init_params<double>(spec, 91, Init::glorot_uniform);
  for (std::size_t i = 0; i < p.values.size(); ++i) {
    if (p.info[i].role == ParamRole::bias) p.values[i] = gaussian(int(p.values[i].rows()), 1, 300 + i) * 0.2;
    if (p.info[i].role == ParamRole::running_mean) p.values[i] = gaussian(int(p.values[i].rows()), 1, 100 + i) * 0.1;
    if (p.info[i].role == ParamRole::running_var)
      p.values[i] = (gaussian(int(p.values[i].rows()), 1, 200 + i).array().abs() + 0.5).matrix();
  }
  const Mat<double> x = gaussian(spec.input.size(), 4, 92);
  std::vector<std::pair<std::string, double>> targets;
  for (const auto& info : p.info)
    if (info.role == ParamRole::weight && spec.followed_by_bn(info.layer))
      targets.emplace_back(info.name, p.at(info.name).norm() * (targets.size() % 2 ? 3.0 : 0.25));
  REQUIRE(targets.size() >= 2);
  auto q = p;
  for (const auto& [name, target] : targets) rescale_weight(spec, q, name, target);
  for (const auto& [name, target] : targets)
    WDLAB_EXPECT_PASS(cmp("norm after rescale " + name, q.at(name).norm(), target, tol::Kind::exact_double));
  for (BnMode mode : {BnMode::train, BnMode::eval}) {
    const Mat<double> before = network_forward(spec, p, x, mode).logits(), after = network_forward(spec, q, x, mode).logits();
    WDLAB_EXPECT_PASS(compare(mode == BnMode::train ? "logits (train mode)" : "logits (eval mode)", span_of(after),
                              span_of(before), tol::Kind::exact_double));
  }
  // Negative control: scaling the weights without the running statistics changes eval predictions.
  auto w_only = p;
  for (const auto& [name, target] : targets) w_only.at(name) *= target / p.at(name).norm();
  const auto c = compare("eval logits, weights scaled without the running statistics",
                         span_of(network_forward(spec, w_only, x, BnMode::eval).logits()),
                         span_of(network_forward(spec, p, x, BnMode::eval).logits()), tol::Kind::exact_double);
  MESSAGE(c.line());
  CHECK(c.rel_fro > 1e-3);
  // A layer not followed by BN (the dense head) is refused; a bad name or target too.
  const std::string head = p.info[p.slots[int(spec.layers.size()) - 1].weight].name;
  CHECK_THROWS_AS(rescale_weight(spec, q, head, 1.0), PreconditionError);
  CHECK_THROWS_AS(rescale_weight(spec, q, "no.such.weight", 1.0), UsageError);
  CHECK_THROWS_AS(rescale_weight(spec, q, targets[0].first, -1.0), UsageError);
}

TEST_CASE("metric group names parse, print and reject unknown names") {
  const auto g = train::parse_metric_groups("metrics.groups", "norms,gn,,jacobian");
  CHECK(g.has(train::MetricGroup::norms));
  CHECK(g.has(train::MetricGroup::gn));
  CHECK(g.has(train::MetricGroup::jacobian));
  CHECK_FALSE(g.has(train::MetricGroup::elr));
  CHECK(train::to_string(g) == "norms,jacobian,gn");
  CHECK(train::parse_metric_groups("x", train::to_string(g)) == g);
  CHECK(train::parse_metric_groups("x", "default") == train::default_metric_groups());
  CHECK(train::parse_metric_groups("x", "none").bits == 0);
  CHECK(train::to_string(train::parse_metric_groups("x", "all")) ==
        "norms,elr,damping,jacobian,jacobian_est,gn,trace,gap,train_eval,rotation");
  CHECK_THROWS_AS(train::parse_metric_groups("metrics.groups", "norms,jacobain"), UsageError);
}

TEST_CASE("every MetricGroup has its own name, which parses back to it alone, and \"all\" holds it") {
  std::set<std::string> names;
  const auto all = train::parse_metric_groups("x", "all");
  for (train::MetricGroup g : train::all_metric_groups) {  // the enum's list, not the name table
    train::MetricGroups one;
    one.add(g);
    const std::string n = train::to_string(one);
    INFO(n);
    CHECK(n != "none");
    CHECK(n.find(',') == std::string::npos);
    CHECK(names.insert(n).second);
    CHECK(train::parse_metric_groups("x", n) == one);
    CHECK(all.has(g));
  }
  CHECK(names.size() == train::all_metric_groups.size());
}

namespace {

/// A backend with weight norms only: what Backend::measure's default serves without an override.
class NormsOnlyBackend final : public train::Backend {
 public:
  std::string describe() const override { return "norms-only test backend"; }
  train::StepStats train_step(const train::HostBatch&, double, std::int64_t) override { return {}; }
  train::EvalStats evaluate(const train::HostBatch&) override { return {}; }
  std::vector<std::pair<std::string, double>> weight_norms() const override { return {{"fc0.weight", 2.0}}; }
  io::SafetensorsFile state() const override { return {}; }
  void load_state(const io::SafetensorsFile&) override {}
};

}  // namespace

TEST_CASE("Backend::set_nonfinite_policy's default accepts abort and refuses skip") {
  // A backend without its own override cannot undo a step; --on-nonfinite skip must not pass
  // silently (before this check the default was a no-op and skip was ignored).
  NormsOnlyBackend be;
  CHECK_NOTHROW(be.set_nonfinite_policy(train::NonfinitePolicy::abort));
  CHECK_THROWS_WITH_AS(be.set_nonfinite_policy(train::NonfinitePolicy::skip),
                       doctest::Contains("--on-nonfinite"), UsageError);
}

TEST_CASE("Backend::measure's default serves norms and elr from weight_norms and refuses the other groups") {
  NormsOnlyBackend be;
  train::MeasureRequest req;
  req.lr = 0.3;
  req.groups = train::parse_metric_groups("test", "norms,elr");
  const auto vals = be.measure(train::HostBatch{}, req);
  REQUIRE(vals.size() == 2);
  CHECK(vals[0] == std::pair<std::string, double>{"norm.fc0.weight", 2.0});
  CHECK(vals[1].first == "elr.fc0.weight");
  WDLAB_EXPECT_PASS(cmp("default elr", vals[1].second, 0.3 / 4.0, tol::Kind::exact_double));
  for (const char* g : {"damping", "jacobian", "jacobian_est", "gn", "trace", "rotation"}) {
    req.groups = train::parse_metric_groups("test", std::string("norms,") + g);
    CHECK_THROWS_AS(be.measure(train::HostBatch{}, req), UsageError);
  }
  CHECK_NOTHROW(be.record_weight_steps(train::WeightSteps::off));
  CHECK_THROWS_AS(be.record_weight_steps(train::WeightSteps::record), UsageError);
  CHECK_THROWS_AS(be.rescale_weights({{"fc0.weight", 1.0}}), UsageError);
}

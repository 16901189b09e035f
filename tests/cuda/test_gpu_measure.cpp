// CudaBackend::measure, ::rescale_weights and the skip policy against ReferenceBackend<float> on
// a small conv+BN+dense net (conv with and without bias, BN, ReLU, max-pool, global average
// pooling, flatten, dense). Metrics: tol::Kind::float32_op for norms/elr (one reduction),
// float32_curvature for the curvature groups (sums over K backward passes).
// Needs a GPU: require_gpu_or_skip() first (exit 77 without one, reported as skipped).
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "common/errors.hpp"
#include "common/network_spec.hpp"
#include "common/train/rotation.hpp"
#include "cuda/backend.hpp"
#include "gpu_guard.hpp"
#include "kernel_test_util.hpp"
#include "reference/backend.hpp"

using namespace wdlab;
using wdlab::cuda::testing::require_gpu_or_skip;

namespace {

NetworkSpec conv_bn_dense_net() {
  SpecBuilder b("measurenet", Shape{3, 8, 8}, 5);
  b.conv("features.0", 6, 3, 1, 1, Bias::on);
  b.batchnorm("features.1");
  b.relu();
  b.maxpool(2, 2);
  b.conv("features.4", 8, 3, 2, 1, Bias::off);
  b.batchnorm("features.5");
  b.relu();
  b.global_avgpool();
  b.flatten();
  b.dense("classifier", 5, Bias::on);
  return b.finish();
}

/// Glorot weights and running statistics away from (0, 1), so eval-mode BN matters.
ref::ParamStore<float> start_params(const NetworkSpec& spec) {
  auto p = ref::init_params<float>(spec, 3, ref::Init::glorot_uniform);
  for (std::size_t t = 0; t < p.info.size(); ++t) {
    auto& v = p.values[t];
    for (Eigen::Index i = 0; i < v.size(); ++i) {
      const double u = rng::normal(8, rng::Purpose::theory, t, std::uint64_t(i));
      if (p.info[t].role == ParamRole::running_mean) v.data()[i] = float(0.2 * u);
      if (p.info[t].role == ParamRole::running_var) v.data()[i] = float(0.6 + 0.3 * std::abs(u));
    }
  }
  return p;
}

std::vector<std::vector<float>> pytorch_params(const ref::ParamStore<float>& p) {
  std::vector<std::vector<float>> out;
  for (std::size_t i = 0; i < p.info.size(); ++i) out.push_back(ref::to_pytorch_order(p.info[i], p.values[i]));
  return out;
}

/// The CUDA side's config: SGD with c's momentum, no regularization (as these tests always ran it).
optim::OptimConfig sgd_config(const optim::OptimConfig& c) {
  optim::OptimConfig s;
  s.kind = optim::OptimizerKind::sgd;
  s.sgd.momentum = c.sgd.momentum;
  return s;
}

/// K-FAC-F with c's K-FAC settings, Cholesky inverses and identity initial factors, no regularization.
optim::OptimConfig kfac_f_config(const optim::OptimConfig& c) {
  optim::OptimConfig s;
  s.kind = optim::OptimizerKind::kfac_f;
  s.kfac = c.kfac;
  s.kfac.inverse = optim::InverseMethod::cholesky;
  s.kfac.factor_init = optim::FactorInit::identity;
  return s;
}

struct Batch {
  std::vector<float> images;
  std::vector<std::int32_t> labels;
  train::HostBatch view() const { return train::HostBatch{images, labels, int(labels.size())}; }
};

Batch make_batch(const NetworkSpec& spec, int n, std::uint64_t stream) {
  Batch b;
  b.images.resize(std::size_t(spec.input.size()) * std::size_t(n));
  for (std::size_t i = 0; i < b.images.size(); ++i) b.images[i] = float(rng::normal(4, rng::Purpose::theory, stream, i));
  for (int i = 0; i < n; ++i) b.labels.push_back(i % spec.classes);
  return b;
}

}  // namespace

TEST_CASE("gpu: CudaBackend measure() matches ReferenceBackend<float> metric by metric") {
  require_gpu_or_skip();
  const NetworkSpec spec = conv_bn_dense_net();
  const auto init = start_params(spec);
  optim::OptimConfig cfg;
  cfg.sgd.momentum = 0.9;
  ref::ReferenceBackend<float> rb(spec, init, cfg, 3);
  cuda::CudaBackend cb(spec, pytorch_params(init), sgd_config(cfg), optim::decay_flags(spec, cfg.reg), 0,
                       cuda::BackendOptions{.policy = cuda::AlgoPolicy::deterministic});
  const Batch probe = make_batch(spec, 8, 40);
  // Both BN modes of the curvature passes (metrics.curvature_bn): eval, and batch (the probe's
  // statistics, the backward through them, per-example Philox signs).
  for (const auto bn : {train::CurvatureBn::eval, train::CurvatureBn::batch})
  for (const auto dist : {train::ProbeDistribution::rademacher, train::ProbeDistribution::gaussian}) {
    INFO("curvature_bn " << train::to_string(bn));
    const bool batch_bn = bn == train::CurvatureBn::batch;
    train::MeasureRequest req;
    req.curvature_bn = bn;
    req.groups = train::parse_metric_groups("test", "norms,elr,damping,jacobian,jacobian_est,gn,trace");
    req.lr = 0.1;
    req.jac_probes = 4;
    req.probe_distribution = dist;
    req.seed = 3;
    req.rng_step = 2;
    const auto r = rb.measure(probe.view(), req);
    const auto c = cb.measure(probe.view(), req);
    REQUIRE(c.size() == r.size());
    for (std::size_t i = 0; i < r.size(); ++i) {
      REQUIRE_MESSAGE(c[i].first == r[i].first, "metric " << i << ": " << c[i].first << " vs " << r[i].first);
      const bool cheap = r[i].first.rfind("norm.", 0) == 0 || r[i].first.rfind("elr", 0) == 0;
      WDLAB_EXPECT_PASS(compare(r[i].first, std::vector<double>{c[i].second}, std::vector<double>{r[i].second},
                                cheap      ? tol::Kind::float32_op
                                : batch_bn ? tol::Kind::float32_backward_bn
                                           : tol::Kind::float32_curvature));
    }
    // Deterministic reductions: the same call gives the same bits.
    const auto again = cb.measure(probe.view(), req);
    for (std::size_t i = 0; i < c.size(); ++i) CHECK_MESSAGE(again[i].second == c[i].second, c[i].first);
    // Control: other probe draws give another estimate (the draws are keyed, not ignored).
    train::MeasureRequest other = req;
    other.groups = train::parse_metric_groups("test", "jacobian_est");
    other.rng_step = 3;
    const auto c2 = cb.measure(probe.view(), other);
    const auto r_est = std::find_if(r.begin(), r.end(), [](const auto& kv) { return kv.first == "jac_norm_est"; });
    REQUIRE(r_est != r.end());
    CHECK_FALSE(compare("jac_norm_est, other rng_step (control)", std::vector<double>{c2.at(0).second},
                        std::vector<double>{r_est->second}, tol::Kind::float32_curvature)
                    .pass);
  }
  // measure() leaves training as it was: a step after it matches the reference's.
  const Batch batch = make_batch(spec, 8, 41);
  const auto sr = rb.train_step(batch.view(), 0.05, 0), sc = cb.train_step(batch.view(), 0.05, 0);
  WDLAB_EXPECT_PASS(compare("loss after measure", std::vector<double>{sc.loss}, std::vector<double>{sr.loss},
                            tol::Kind::float32_network));
}

TEST_CASE("gpu: rescale_weights keeps predictions and matches the reference's rescaling, all or nothing") {
  require_gpu_or_skip();
  const NetworkSpec spec = conv_bn_dense_net();
  const auto init = start_params(spec);
  optim::OptimConfig cfg;
  ref::ReferenceBackend<float> rb(spec, init, cfg, 3);
  cuda::CudaBackend cb(spec, pytorch_params(init), sgd_config(cfg), optim::decay_flags(spec, cfg.reg), 0);
  const Batch batch = make_batch(spec, 8, 42);
  const auto before = cb.evaluate(batch.view());
  const train::NamedValues targets{{"features.0.weight", 3.0}, {"features.4.weight", 0.25}};
  cb.rescale_weights(targets);
  rb.rescale_weights(targets);
  const auto after = cb.evaluate(batch.view());
  WDLAB_EXPECT_PASS(compare("eval loss after rescaling", std::vector<double>{after.loss()},
                            std::vector<double>{before.loss()}, tol::Kind::float32_network));
  CHECK(after.correct == before.correct);
  for (const auto& [name, norm] : cb.weight_norms())
    if (name == "features.0.weight") CHECK(norm == doctest::Approx(3.0).epsilon(1e-6));
  const auto pc = cb.parameters(), pr = pytorch_params(rb.params());
  for (std::size_t i = 0; i < pc.size(); ++i)
    WDLAB_EXPECT_PASS(compare("rescaled " + spec.params()[i].name, cuda::testing::to_d(pc[i]),
                              cuda::testing::to_d(pr[i]), tol::Kind::float32_op));
  // Controls: a weight not followed by BN, an unknown name; neither changes anything.
  const auto kept = cb.parameters();
  CHECK_THROWS_AS(cb.rescale_weights({{"features.0.weight", 1.0}, {"classifier.weight", 2.0}}), PreconditionError);
  CHECK_THROWS_AS(cb.rescale_weights({{"features.0.weight", 1.0}, {"no.such.weight", 2.0}}), UsageError);
  CHECK_THROWS_AS(cb.rescale_weights({{"features.0.weight", -1.0}}), UsageError);
  CHECK(cb.parameters() == kept);
}

TEST_CASE("gpu: under skip a non-finite update leaves parameters and optimizer state bit-identical") {
  require_gpu_or_skip();
  const NetworkSpec spec = conv_bn_dense_net();
  optim::OptimConfig cfg;
  cfg.sgd.momentum = 0.9;
  const auto init = start_params(spec);
  const Batch batch = make_batch(spec, 8, 43);
  // The injected fault: a running mean of +inf. Train mode does not read it, so the loss and the
  // gradients stay finite, but its update (m·inf + ...) is not: the step's update is non-finite.
  auto poison = [](io::SafetensorsFile f) {
    auto v = f.f32("features.1.running_mean");
    v[1] = std::numeric_limits<float>::infinity();
    f.tensors["features.1.running_mean"] = io::Tensor::from_f32(f.tensors.at("features.1.running_mean").shape, v);
    return f;
  };
  for (const auto policy : {train::NonfinitePolicy::skip, train::NonfinitePolicy::abort}) {
    cuda::CudaBackend cb(spec, pytorch_params(init), sgd_config(cfg), optim::decay_flags(spec, cfg.reg), 0);
    ref::ReferenceBackend<float> rb(spec, init, cfg, 3);
    cb.set_nonfinite_policy(policy);
    rb.set_nonfinite_policy(policy);
    CHECK(cb.train_step(batch.view(), 0.05, 0).finite);  // momentum is not zero from here on
    rb.train_step(batch.view(), 0.05, 0);
    cb.load_state(poison(cb.state()));
    rb.load_state(poison(rb.state()));
    const auto params_before = cb.parameters();
    const io::SafetensorsFile state_before = cb.state();
    const auto sc = cb.train_step(batch.view(), 0.05, 1), sr = rb.train_step(batch.view(), 0.05, 1);
    CHECK_FALSE(sc.finite);
    CHECK_FALSE(sr.finite);
    CHECK(sc.nonfinite_tensor == sr.nonfinite_tensor);  // "update"
    CHECK(sc.nonfinite_layer == sr.nonfinite_layer);    // features.1.running_mean
    MESSAGE("cuda: " << sc.nonfinite_tensor << " " << sc.nonfinite_layer);
    if (policy == train::NonfinitePolicy::skip) {
      CHECK(cb.parameters() == params_before);
      for (const auto& [name, t] : state_before.tensors) CHECK_MESSAGE(cb.state().tensors.at(name).data == t.data, name);
    } else {
      CHECK(cb.parameters() != params_before);  // control: without the copy the step shows
    }
  }
  // A non-finite loss (a NaN input, as WDLAB_FAULT_NAN_AT injects) is reported as the loss.
  cuda::CudaBackend cb(spec, pytorch_params(init), sgd_config(cfg), optim::decay_flags(spec, cfg.reg), 0);
  cb.set_nonfinite_policy(train::NonfinitePolicy::skip);
  Batch bad = batch;
  bad.images[0] = std::numeric_limits<float>::quiet_NaN();
  const auto s = cb.train_step(bad.view(), 0.05, 0);
  CHECK_FALSE(s.finite);
  CHECK(s.nonfinite_tensor == "loss");
  CHECK(cb.parameters() == pytorch_params(init));
}

TEST_CASE("gpu: K-FAC-F measure() rows (elr_opt, damping) match the reference on the same state") {
  require_gpu_or_skip();
  const NetworkSpec spec = conv_bn_dense_net();
  const auto init = start_params(spec);
  optim::OptimConfig cfg;
  cfg.kind = optim::OptimizerKind::kfac_f;
  cfg.kfac.damping = 1e-2;
  cfg.kfac.t_cov = 1;
  cfg.kfac.t_inv = 1;
  cuda::CudaBackend cb(spec, pytorch_params(init), kfac_f_config(cfg), optim::decay_flags(spec, cfg.reg), 7);
  const Batch batch = make_batch(spec, 8, 44);
  for (int k = 0; k < 2; ++k) CHECK(cb.train_step(batch.view(), 0.05, k).finite);
  ref::ReferenceBackend<float> rb(spec, init, cfg, 7);
  rb.load_state(cb.state());  // the same factors, so the damping rows are comparable
  train::MeasureRequest req;
  req.groups = train::parse_metric_groups("test", "norms,elr,damping");
  req.lr = 0.05;
  const auto r = rb.measure(batch.view(), req), c = cb.measure(batch.view(), req);
  REQUIRE(c.size() == r.size());
  int damping_rows = 0;
  for (std::size_t i = 0; i < r.size(); ++i) {
    REQUIRE_MESSAGE(c[i].first == r[i].first, c[i].first << " vs " << r[i].first);
    damping_rows += r[i].first.rfind("damping_", 0) == 0;
    WDLAB_EXPECT_PASS(compare(r[i].first, std::vector<double>{c[i].second}, std::vector<double>{r[i].second},
                              r[i].first.rfind("damping_frac", 0) == 0 ? tol::Kind::float32_curvature
                                                                       : tol::Kind::float32_op));
  }
  CHECK(damping_rows == 6);  // damping_eff and damping_frac of three blocks
}

TEST_CASE("gpu: group rotation's step records give the reference's rows (SGD with L2, K-FAC-F with WD)") {
  // Both backends record their own steps (Backend::record_weight_steps) from the same start; the
  // rows come from the shared rotation_rows, so a wrong dot, norm or gradient on either shows.
  require_gpu_or_skip();
  const NetworkSpec spec = conv_bn_dense_net();
  const auto init = start_params(spec);
  const Batch batch = make_batch(spec, 8, 45);
  for (const optim::OptimizerKind kind : {optim::OptimizerKind::sgd, optim::OptimizerKind::kfac_f}) {
    INFO(optim::to_string(kind));
    optim::OptimConfig cfg;
    cfg.kind = kind;
    cfg.reg.kind = kind == optim::OptimizerKind::sgd ? optim::Regularization::l2 : optim::Regularization::wd;
    cfg.reg.weight_decay = 0.01;
    cfg.kfac.damping = 1e-2;
    cfg.kfac.t_cov = 1;
    cfg.kfac.t_inv = 1;
    cuda::CudaBackend cb(spec, pytorch_params(init), cfg, optim::decay_flags(spec, cfg.reg), 7);
    ref::ReferenceBackend<float> rb(spec, init, cfg, 7);
    train::RotationMeter mc, mr;
    cb.record_weight_steps(train::WeightSteps::record);
    rb.record_weight_steps(train::WeightSteps::record);
    for (int k = 0; k < 2; ++k) {
      const auto c = cb.train_step(batch.view(), 0.05, k), r = rb.train_step(batch.view(), 0.05, k);
      REQUIRE(c.finite);
      REQUIRE(r.finite);
      REQUIRE(c.weight_steps.size() == 3);  // features.0, features.4, classifier
      mc.add(c.weight_steps);
      mr.add(r.weight_steps);
    }
    train::MeasureRequest req;
    req.groups = train::parse_metric_groups("test", "rotation");
    req.lr = 0.05;
    const auto rows_c = train::rotation_rows(cb.measure_summary(batch.view(), req), mc, 0.05);
    const auto rows_r = train::rotation_rows(rb.measure_summary(batch.view(), req), mr, 0.05);
    REQUIRE(rows_c.size() == rows_r.size());
    int predicted = 0;
    for (std::size_t i = 0; i < rows_r.size(); ++i) {
      REQUIRE(rows_c[i].first == rows_r[i].first);
      REQUIRE(std::isnan(rows_c[i].second) == std::isnan(rows_r[i].second));
      if (std::isnan(rows_r[i].second)) continue;
      predicted += rows_r[i].first.rfind("rot_pred.", 0) == 0;
      WDLAB_EXPECT_PASS(compare(rows_r[i].first, std::vector<double>{rows_c[i].second},
                                std::vector<double>{rows_r[i].second}, tol::Kind::float32_steps));
    }
    // SGD + L2: the two BN-followed convs have a prediction; K-FAC has none.
    CHECK(predicted == (kind == optim::OptimizerKind::sgd ? 2 : 0));
  }
}

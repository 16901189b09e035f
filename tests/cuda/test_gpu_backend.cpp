// CudaBackend against ReferenceBackend<float>: the same spec, parameters, batch and optimizer,
// two training steps, then evaluation, checkpoint round trip, and a checkpoint loaded by the
// reference. Every layer kind of the zoo appears once: conv (bias, stride 2), BN (with and without
// γ/β), ReLU, max-pool, residual add, global average pooling, flatten, dense.
// Needs a GPU: require_gpu_or_skip() first (exit 77 without one, reported as skipped).
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "common/network_spec.hpp"
#include "cuda/backend.hpp"
#include "gpu_guard.hpp"
#include "kernel_test_util.hpp"
#include "reference/backend.hpp"

using namespace wdlab;
using wdlab::cuda::testing::require_gpu_or_skip;

namespace {

NetworkSpec every_layer_net() {
  SpecBuilder b("testnet", Shape{3, 8, 8}, 5);
  const int c0 = b.conv("features.0", 6, 3, 1, 1, Bias::on);
  b.batchnorm("features.1");
  const int r0 = b.relu();
  b.conv("features.3", 6, 3, 1, 1, Bias::off);
  b.affine = Affine::on;
  b.batchnorm("features.4");
  b.affine = Affine::off;
  const int sum = b.add(r0, b.last());
  b.relu(sum);
  b.maxpool(2, 2);
  b.conv("features.8", 8, 3, 2, 1, Bias::off);
  b.relu();
  b.global_avgpool();
  b.flatten();
  b.dense("classifier", 5, Bias::on);
  (void)c0;
  return b.finish();
}

std::vector<std::vector<float>> pytorch_params(const ref::ParamStore<float>& p) {
  std::vector<std::vector<float>> out;
  for (std::size_t i = 0; i < p.info.size(); ++i) out.push_back(ref::to_pytorch_order(p.info[i], p.values[i]));
  return out;
}


}  // namespace

TEST_CASE("gpu: CudaBackend steps match ReferenceBackend<float> (SGD+L2, Adam+WD)") {
  require_gpu_or_skip();
  const NetworkSpec spec = every_layer_net();
  const int n = 16;
  std::vector<float> images(std::size_t(spec.input.size() * n));
  for (std::size_t i = 0; i < images.size(); ++i) images[i] = float(rng::normal(4, rng::Purpose::theory, 1, i));
  std::vector<std::int32_t> labels(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) labels[std::size_t(i)] = i % 5;
  const train::HostBatch batch{images, labels, n};
  for (const auto kind : {optim::OptimizerKind::sgd, optim::OptimizerKind::adam}) {
    optim::OptimConfig cfg;
    cfg.kind = kind;
    cfg.reg.kind = kind == optim::OptimizerKind::sgd ? optim::Regularization::l2 : optim::Regularization::wd;
    cfg.reg.weight_decay = 5e-4;
    const auto init = ref::init_params<float>(spec, 3, ref::Init::glorot_uniform);
    ref::ReferenceBackend<float> rb(spec, init, cfg, 3);
    cuda::CudaBackend cb(spec, pytorch_params(init), cfg, optim::decay_flags(spec, cfg.reg), 0,
                         cuda::BackendOptions{.policy = cuda::AlgoPolicy::deterministic});
    MESSAGE(cb.describe());
    for (int k = 0; k < 2; ++k) {
      const auto sr = rb.train_step(batch, 0.05, k);
      const auto sc = cb.train_step(batch, 0.05, k);
      WDLAB_EXPECT_PASS(compare(optim::to_string(kind) + " loss step " + std::to_string(k), std::vector<double>{sc.loss}, std::vector<double>{sr.loss},
                                tol::Kind::float32_network));
      CHECK(sc.correct == sr.correct);
      CHECK(sc.finite);
    }
    for (const auto& line : cb.algorithm_choices()) MESSAGE(line);
    // Parameter updates θ₂ − θ₀ per tensor (the parameters themselves would hide gradient errors).
    const auto pc = cb.parameters();
    const auto p0 = pytorch_params(init);
    const auto pr = pytorch_params(rb.params());
    for (std::size_t i = 0; i < pc.size(); ++i) {
      std::vector<double> dc(pc[i].size()), dr(pc[i].size());
      for (std::size_t j = 0; j < pc[i].size(); ++j) {
        dc[j] = double(pc[i][j]) - double(p0[i][j]);
        dr[j] = double(pr[i][j]) - double(p0[i][j]);
      }
      WDLAB_EXPECT_PASS(compare(optim::to_string(kind) + " update " + spec.params()[i].name, dc, dr,
                                tol::Kind::float32_steps));
    }
    const auto ec = cb.evaluate(batch), er = rb.evaluate(batch);
    WDLAB_EXPECT_PASS(compare(optim::to_string(kind) + " eval loss", std::vector<double>{ec.loss()}, std::vector<double>{er.loss()}, tol::Kind::float32_network));
    // Checkpoints interchange: the reference loads the CUDA state and steps on identically.
    const io::SafetensorsFile f = cb.state();
    ref::ReferenceBackend<float> rb2(spec, init, cfg, 3);
    rb2.load_state(f);
    const auto after_c = cb.train_step(batch, 0.05, 2), after_r = rb2.train_step(batch, 0.05, 2);
    WDLAB_EXPECT_PASS(compare(optim::to_string(kind) + " step after reload", std::vector<double>{after_c.loss}, std::vector<double>{after_r.loss},
                              tol::Kind::float32_network));
    cb.load_state(rb2.state());  // and back
  }
}

TEST_CASE("gpu: a non-finite loss leaves the CUDA backend's state as it was") {
  require_gpu_or_skip();
  const NetworkSpec spec = every_layer_net();
  const auto init = ref::init_params<float>(spec, 3, ref::Init::glorot_uniform);
  optim::OptimConfig cfg;
  cuda::CudaBackend cb(spec, pytorch_params(init), cfg, optim::decay_flags(spec, cfg.reg), 0);
  const int n = 4;
  std::vector<float> images(std::size_t(spec.input.size() * n), 1.0f);
  images[5] = std::numeric_limits<float>::infinity();
  const std::vector<std::int32_t> labels{0, 1, 2, 3};
  const auto s = cb.train_step(train::HostBatch{images, labels, n}, 0.1, 0);
  CHECK_FALSE(s.finite);
  CHECK(cb.parameters() == pytorch_params(init));
}

// CudaBackend's K-FAC-F and K-FAC-G against ReferenceBackend<float>: a small conv+BN+dense net,
// three steps with T_cov = 1 and T_inv = 2 (so steps 0 and 2 recompute inverses, every step
// updates the factors), the same seed (same Fisher targets and GN probes). Compared: losses,
// factors A and S, damped inverses, momentum and parameters (tolerance table rows float32_*),
// then a CUDA checkpoint loaded by the reference stepping on identically.
// Needs a GPU: require_gpu_or_skip() first (exit 77 without one, reported as skipped).
#include <doctest/doctest.h>

#include <cmath>
#include <string>
#include <vector>

#include "common/compare.hpp"
#include "common/network_spec.hpp"
#include "cuda/backend.hpp"
#include "cuda/kfac.hpp"
#include "gpu_guard.hpp"
#include "kernel_test_util.hpp"
#include "reference/backend.hpp"

using namespace wdlab;
using wdlab::cuda::testing::require_gpu_or_skip;
using wdlab::cuda::testing::to_d;

namespace {

NetworkSpec kfac_net() {
  SpecBuilder b("kfacnet", Shape{3, 8, 8}, 5);
  b.conv("features.0", 6, 3, 1, 1, Bias::on);
  b.batchnorm("features.1");
  b.relu();
  b.maxpool(2, 2);
  b.conv("features.4", 8, 3, 2, 1, Bias::off);
  b.relu();
  b.flatten();
  b.dense("classifier", 5, Bias::on);
  return b.finish();
}

std::vector<std::vector<float>> pytorch_params(const ref::ParamStore<float>& p) {
  std::vector<std::vector<float>> out;
  for (std::size_t i = 0; i < p.info.size(); ++i) out.push_back(ref::to_pytorch_order(p.info[i], p.values[i]));
  return out;
}


tol::Kind kind_of(const std::string& name) {
  if (name.find("_inv.") != std::string::npos) return tol::Kind::float32_inverse;
  if (name.rfind("optim.kfac.A.", 0) == 0 || name.rfind("optim.kfac.S.", 0) == 0) return tol::Kind::float32_curvature;
  return tol::Kind::float32_steps;
}

}  // namespace

TEST_CASE("gpu: CudaBackend K-FAC-F and K-FAC-G match ReferenceBackend<float> over three steps") {
  require_gpu_or_skip();
  const NetworkSpec spec = kfac_net();
  const int n = 16;
  std::vector<float> images(std::size_t(spec.input.size() * n));
  for (std::size_t i = 0; i < images.size(); ++i) images[i] = float(rng::normal(4, rng::Purpose::theory, 2, i));
  std::vector<std::int32_t> labels(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) labels[std::size_t(i)] = i % 5;
  const train::HostBatch batch{images, labels, n};
  struct Variant {
    optim::OptimizerKind kind;
    optim::Regularization reg;
    optim::InverseMethod inverse;
    optim::FactorInit init;
    double kl_clip;
  };
  const std::vector<Variant> variants{
      {optim::OptimizerKind::kfac_f, optim::Regularization::wd, optim::InverseMethod::cholesky, optim::FactorInit::identity, 0.0},
      {optim::OptimizerKind::kfac_g, optim::Regularization::l2, optim::InverseMethod::cholesky, optim::FactorInit::data_pass, 1e-2},
      {optim::OptimizerKind::kfac_f, optim::Regularization::none, optim::InverseMethod::eig, optim::FactorInit::data_pass, 1e-3},
  };
  for (const Variant& v : variants) {
    optim::OptimConfig cfg;
    cfg.kind = v.kind;
    cfg.reg.kind = v.reg;
    cfg.reg.weight_decay = 1e-2;
    cfg.kfac.damping = 1e-2;
    cfg.kfac.t_cov = 1;
    cfg.kfac.t_inv = 2;
    cfg.kfac.inverse = v.inverse;
    cfg.kfac.factor_init = v.init;
    cfg.kfac.kl_clip = v.kl_clip;
    const std::string tag = optim::to_string(v.kind) + "/" + optim::to_string(v.reg) + "/" + optim::to_string(v.inverse) + ": ";
    const auto init = ref::init_params<float>(spec, 3, ref::Init::glorot_uniform);
    ref::ReferenceBackend<float> rb(spec, init, cfg, 7);
    cuda::CudaBackend cb(spec, pytorch_params(init), cfg, optim::decay_flags(spec, cfg.reg), 7,
                         cuda::BackendOptions{.policy = cuda::AlgoPolicy::deterministic});
    MESSAGE(cb.describe());
    REQUIRE(cb.wants_factor_init() == rb.wants_factor_init());
    if (rb.wants_factor_init()) {
      for (int b = 0; b < 2; ++b) {
        rb.accumulate_factor_init(batch, b);
        cb.accumulate_factor_init(batch, b);
      }
      rb.finish_factor_init();
      cb.finish_factor_init();
    }
    for (int k = 0; k < 3; ++k) {
      const auto sr = rb.train_step(batch, 0.05, k);
      const auto sc = cb.train_step(batch, 0.05, k);
      WDLAB_EXPECT_PASS(compare(tag + "loss step " + std::to_string(k), std::vector<double>{sc.loss},
                                std::vector<double>{sr.loss}, tol::Kind::float32_network));
      CHECK(sc.finite);
      CHECK(sc.events.size() == sr.events.size());
    }
    // Factors, inverses, momentum (the "optim." state) and parameters, tensor by tensor.
    const io::SafetensorsFile fc = cb.state(), fr = rb.state();
    int compared = 0;
    for (const auto& [name, t] : fr.tensors) {
      REQUIRE_MESSAGE(fc.tensors.count(name) == 1, name);
      CHECK(fc.at(name).shape == t.shape);
      if (name == "optim.kfac.initialized" || name == "optim.kfac.inverses_ready") {
        CHECK_MESSAGE(fc.f32(name) == fr.f32(name), name);
      } else if (name.rfind("optim.kfac.damping.", 0) == 0) {
        WDLAB_EXPECT_PASS(compare(tag + name, to_d(fc.f32(name)), to_d(fr.f32(name)), tol::Kind::float32_curvature));
      } else {
        WDLAB_EXPECT_PASS(compare(tag + name, to_d(fc.f32(name)), to_d(fr.f32(name)), kind_of(name)));
      }
      ++compared;
    }
    CHECK(fc.tensors.size() == fr.tensors.size());
    MESSAGE(tag << compared << " tensors compared");
    // The CUDA checkpoint, loaded by the reference, steps on as the CUDA backend does.
    ref::ReferenceBackend<float> rb2(spec, init, cfg, 7);
    rb2.load_state(fc);
    const auto c3 = cb.train_step(batch, 0.05, 3), r3 = rb2.train_step(batch, 0.05, 3);
    WDLAB_EXPECT_PASS(compare(tag + "step after reload", std::vector<double>{c3.loss}, std::vector<double>{r3.loss},
                              tol::Kind::float32_network));
    cb.load_state(rb2.state());  // and back
    REQUIRE(cb.kfac() != nullptr);
    // The damping group against the reference's measure() on the same state.
    train::MeasureRequest req;
    req.groups.add(train::MetricGroup::damping);
    const auto mr = rb2.measure(batch, req);
    const auto mc = cb.measure(batch, req);
    REQUIRE(mc.size() == mr.size());
    for (std::size_t i = 0; i < mr.size(); ++i) {
      CHECK(mc[i].first == mr[i].first);
      WDLAB_EXPECT_PASS(compare(tag + mc[i].first, std::vector<double>{mc[i].second}, std::vector<double>{mr[i].second},
                                tol::Kind::float32_curvature));
    }
  }
}

TEST_CASE("gpu: a K-FAC step on a non-finite loss leaves parameters and factors alone") {
  require_gpu_or_skip();
  const NetworkSpec spec = kfac_net();
  const auto init = ref::init_params<float>(spec, 3, ref::Init::glorot_uniform);
  optim::OptimConfig cfg;
  cfg.kind = optim::OptimizerKind::kfac_g;
  cfg.kfac.t_cov = 1;
  cuda::CudaBackend cb(spec, pytorch_params(init), cfg, optim::decay_flags(spec, cfg.reg), 1);
  const int n = 4;
  std::vector<float> images(std::size_t(spec.input.size() * n), 1.0f);
  images[5] = std::numeric_limits<float>::infinity();
  const std::vector<std::int32_t> labels{0, 1, 2, 3};
  const auto before = cb.state();
  const auto s = cb.train_step(train::HostBatch{images, labels, n}, 0.1, 0);
  CHECK_FALSE(s.finite);
  CHECK(s.nonfinite_tensor == "loss");
  CHECK(cb.parameters() == pytorch_params(init));
  CHECK(cb.state().at("optim.kfac.A.features.0").data == before.at("optim.kfac.A.features.0").data);
}

// The CPU engine's float results do not depend on its thread count: every parallel pass cuts its
// work by shape (conv chunks, BN columns, the dense products' row or column pieces, K-FAC's factor
// groups, elementwise pieces) and each BLAS call runs on one thread, so training steps at 1, 2
// and 3 threads give the same parameters bit for bit. Negative control: another seed differs.
// Likewise K-FAC's steps do not depend on whether the backward formed the gradients of the layers
// it preconditions through their factors.
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <cstdint>
#include <vector>

#include "common/cpu_runtime.hpp"
#include "common/model_zoo.hpp"
#include "reference/backend.hpp"
#include "reference/net/params.hpp"

using namespace wdlab;

namespace {

/// Parameters after `steps` steps of `kind` on a fixed batch at `threads` threads. K-FAC
/// estimates its factors every step and inverts them every other step, so the steps run its
/// statistics, factor sums, inverses and preconditioning products.
std::vector<ref::Mat<float>> trained(const NetworkSpec& spec, optim::OptimizerKind kind, int threads,
                                   std::uint64_t seed, int steps = 4,
                                   train::WeightSteps record = train::WeightSteps::off, double kl_clip = 0) {
  set_cpu_threads(threads);
  optim::OptimConfig oc;
  oc.kind = kind;
  oc.kfac.t_cov = 1;
  oc.kfac.t_inv = 2;
  oc.kfac.kl_clip = kl_clip;
  ref::ReferenceBackend<float> be(spec, ref::init_params<float>(spec, seed, ref::Init::glorot_uniform), oc, 1);
  be.record_weight_steps(record);
  const int n = 128;
  std::vector<float> images(std::size_t(spec.input.size()) * n);
  for (std::size_t i = 0; i < images.size(); ++i) images[i] = float((i * 7919) % 2000) / 1000.f - 1.f;
  std::vector<std::int32_t> labels;
  for (int j = 0; j < n; ++j) labels.push_back(j % spec.classes);
  for (int k = 0; k < steps; ++k) REQUIRE(be.train_step(train::HostBatch{images, labels, n}, 1e-2, k).finite);
  set_cpu_threads(0);
  return be.params().values;
}

/// How many tensors of a and b differ in any bit.
int differing(const std::vector<ref::Mat<float>>& a, const std::vector<ref::Mat<float>>& b) {
  int d = 0;
  for (std::size_t t = 0; t < a.size(); ++t) d += !(a[t] == b[t]);
  return d;
}

}  // namespace

TEST_CASE("training steps give the same bits at 1, 2 and 3 threads (dense and conv, SGD and K-FAC)") {
  // The MLP's products (≥ 6.4 M multiply-adds) are cut into pieces; the convnet's K-FAC factors
  // are summed in groups.
  const NetworkSpec mlp = zoo::mlp(Shape{196, 1, 1}, 10, {.depth = 2, .width = 256, .norm = Norm::batchnorm});
  const NetworkSpec conv = zoo::small_convnet(Shape{1, 14, 14}, 10, 8, {.norm = Norm::batchnorm});
  for (const NetworkSpec* spec : {&mlp, &conv})
    for (const auto kind : {optim::OptimizerKind::sgd, optim::OptimizerKind::kfac_f, optim::OptimizerKind::kfac_g}) {
      const auto one = trained(*spec, kind, 1, 3);
      const auto two = trained(*spec, kind, 2, 3);
      const auto three = trained(*spec, kind, 3, 3);
      const auto other_seed = trained(*spec, kind, 1, 4);
      const int d2 = differing(one, two), d3 = differing(one, three), dc = differing(one, other_seed);
      MESSAGE(fmt::format("{} {}: tensors differing from 1 thread: {} at 2 threads, {} at 3; control (other "
                          "seed): {} of {}",
                          spec->model, optim::to_string(kind), d2, d3, dc, one.size()));
      CHECK(d2 == 0);
      CHECK(d3 == 0);
      CHECK(dc > 0);
    }
}

TEST_CASE("K-FAC's steps are the same bits whether or not the backward forms the factored layers' gradients") {
  // Recording weight steps needs ‖g‖², so the backward then forms every gradient; without it the
  // dense layers K-FAC preconditions through their factors (784→256, 256→256 at batch 128) get
  // none. With KL clipping on, the Σ⟨g, U⟩ of those layers comes from their factors both times.
  const NetworkSpec mlp = zoo::mlp(Shape{196, 1, 1}, 10, {.depth = 2, .width = 256});
  for (const auto kind : {optim::OptimizerKind::kfac_f, optim::OptimizerKind::kfac_g}) {
    std::vector<ref::Mat<float>> unclipped;
    for (const double clip : {0.0, 1e-9}) {
      const auto formed = trained(mlp, kind, 2, 3, 4, train::WeightSteps::record, clip);
      const auto skipped = trained(mlp, kind, 2, 3, 4, train::WeightSteps::off, clip);
      const auto other_seed = trained(mlp, kind, 2, 4, 4, train::WeightSteps::off, clip);
      const int d = differing(formed, skipped), dc = differing(formed, other_seed);
      // The clip must bind for its sum to matter: the clipped run differs from the unclipped one.
      const int dk = clip > 0 ? differing(skipped, unclipped) : 0;
      MESSAGE(fmt::format("{} kl_clip {}: tensors differing, gradients formed vs not: {}; controls: other seed {}, "
                          "unclipped run {} (of {})",
                          optim::to_string(kind), clip, d, dc, dk, formed.size()));
      CHECK(d == 0);
      CHECK(dc > 0);
      if (clip > 0) CHECK(dk > 0);
      else unclipped = skipped;
    }
  }
}

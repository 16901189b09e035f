// The CUDA backend's device-memory plan (common/train/device_memory_plan.hpp) against sums done
// by hand for a four-layer net, and at the paper's scale against the size the out-of-memory
// review found (ResNet32×4-BN at batch 2000: ~69 GB of activations and cotangents).
#include <doctest/doctest.h>

#include "common/model_zoo.hpp"
#include "common/train/device_memory_plan.hpp"

using namespace wdlab;

namespace {

/// input 1×2×2 → dense 4→3 (bias) → BN(3, affine) → ReLU → dense 3→2 (no bias).
NetworkSpec tiny() {
  NetworkSpec s;
  s.model = "tiny";
  s.input = Shape{1, 2, 2};
  s.classes = 2;
  Layer fc0{.kind = LayerKind::dense, .name = "fc0", .inputs = {-1}, .in = {1, 2, 2}, .out = {3, 1, 1}, .bias = Bias::on};
  Layer bn1{.kind = LayerKind::batchnorm, .name = "bn1", .inputs = {0}, .in = {3, 1, 1}, .out = {3, 1, 1}, .affine = Affine::on};
  Layer relu{.kind = LayerKind::relu, .inputs = {1}, .in = {3, 1, 1}, .out = {3, 1, 1}};
  Layer fc3{.kind = LayerKind::dense, .name = "fc3", .inputs = {2}, .in = {3, 1, 1}, .out = {2, 1, 1}, .bias = Bias::off};
  s.layers = {fc0, bn1, relu, fc3};
  return s;
}

std::int64_t line(const train::DeviceMemoryPlan& p, const std::string& prefix) {
  for (const auto& l : p.lines)
    if (l.what.rfind(prefix, 0) == 0) return l.bytes;
  FAIL("no line " << prefix);
  return -1;
}

}  // namespace

TEST_CASE("device memory plan: every buffer class of a tiny net, summed by hand") {
  const NetworkSpec s = tiny();
  // Training set, N = 2: input 8 floats (32 B), labels 8 B, loss and hits 4 doubles (32 B);
  // outputs 6+6+6+4 floats (88 B) and as many cotangents (88 B); BN mean/var/invstd 9 doubles
  // (72 B) and x̂ 6 floats (24 B); reduction scratch 6 doubles (48 B: BN's two sums of 3
  // channels × 1 lane, the larger of that and 3 per parameter chunk); BN backward sums 2·3
  // doubles (48 B). 440 B.
  CHECK(train::activation_bytes(s, 2, true) == 440);
  // Evaluation set, N = 5, forward only: input 80 B, labels 20 B, loss and hits 80 B, outputs
  // 55 floats (220 B), scratch 24 B. 424 B. Control: the same batch with a backward is larger.
  CHECK(train::activation_bytes(s, 5, false) == 424);
  CHECK(train::activation_bytes(s, 5, true) > 424);

  train::DeviceMemoryInput in{.train_batch = 2, .eval_batch = 5, .optimizer = optim::OptimizerKind::sgd,
                              .conv_workspace_limit = 1000};
  const auto sgd = train::plan_device_memory(s, in);
  // 33 parameters (12+3 dense, 4 BN vectors of 3, 6 dense), 27 of them trainable.
  CHECK(line(sgd, "parameters") == 132);
  CHECK(line(sgd, "gradients") == 108);
  CHECK(line(sgd, "sgd state (1 per parameter)") == 108);
  CHECK(line(sgd, "train activations (batch 2)") == 440);
  CHECK(line(sgd, "eval activations (batch 5") == 424);
  CHECK(line(sgd, "cuDNN workspace") == 1000);
  CHECK(sgd.total() == 132 + 108 + 108 + 440 + 424 + 1000);
  CHECK(sgd.describe().find("total") != std::string::npos);

  in.optimizer = optim::OptimizerKind::adam;
  in.snapshot = true;
  const auto adam = train::plan_device_memory(s, in);
  CHECK(line(adam, "adam state (2 per parameter)") == 216);
  CHECK(line(adam, "--on-nonfinite skip") == (33 + 54) * 4);

  in.optimizer = optim::OptimizerKind::kfac_f;
  in.snapshot = false;
  in.resident_examples = 10;
  const auto kfac = train::plan_device_memory(s, in);
  // Blocks: fc0 A 5×5 (4 inputs + bias), S 3×3; fc3 A 3×3, S 2×2. Six matrices each of A and S
  // halves: 3·(25+9) + 3·(9+4) = 141 floats; the data pass 47 more; momentum and directions
  // 2·27; scratch 3 × the largest block gradient (5·3).
  CHECK(line(kfac, "K-FAC factors") == 141 * 4);
  CHECK(line(kfac, "K-FAC data-pass") == 47 * 4);
  CHECK(line(kfac, "K-FAC momentum") == 54 * 4);
  CHECK(line(kfac, "K-FAC scratch") == 45 * 4);
  CHECK(line(kfac, "resident data (10 images)") == 10 * (4 * 4 + 4));
}

TEST_CASE("device memory plan at the paper's scale: ResNet32x4-BN at batch 2000 needs tens of GB") {
  const NetworkSpec r = zoo::resnet(32, 4, Shape{3, 32, 32}, 10, zoo::ConvOptions{});
  const double gb = 1e9;
  const double train_gb = double(train::activation_bytes(r, 2000, true)) / gb;
  const double eval_gb = double(train::activation_bytes(r, 2000, false)) / gb;
  MESSAGE("ResNet32x4-BN batch 2000: training set " << train_gb << " GB, forward-only set " << eval_gb << " GB");
  // The review's count was ~69 GB for outputs and cotangents; x̂ is absent (no affine BN).
  CHECK(train_gb > 50);
  CHECK(train_gb < 90);
  // Forward only: the cotangents are gone, so a bit more than half.
  CHECK(eval_gb < 0.6 * train_gb);
  CHECK(eval_gb > 0.4 * train_gb);
}

TEST_CASE("layer_extra_buffers: what each kind keeps beyond its output, by hand, train and eval") {
  // Train-mode BN keeps mean/var/invstd per channel and x̂ when affine; max pooling its winners
  // in both modes (its forward kernel writes them); evaluation BN keeps nothing (running statistics).
  Layer bn{.kind = LayerKind::batchnorm, .name = "bn", .inputs = {-1}, .in = {4, 3, 3}, .out = {4, 3, 3}, .affine = Affine::on};
  Layer bn_plain = bn;
  bn_plain.affine = Affine::off;
  Layer pool{.kind = LayerKind::maxpool, .name = "pool", .inputs = {-1}, .in = {4, 6, 6}, .out = {4, 3, 3}};
  Layer relu{.kind = LayerKind::relu, .inputs = {-1}, .in = {4, 3, 3}, .out = {4, 3, 3}};
  const int N = 5;
  const auto t = train::layer_extra_buffers(bn, N, true);
  CHECK(t.bn_statistics == 3 * 4);
  CHECK(t.xhat == N * 4 * 3 * 3);
  CHECK(t.argmax == 0);
  CHECK(train::layer_extra_buffers(bn_plain, N, true).xhat == 0);
  CHECK(train::layer_extra_buffers(bn_plain, N, true).bn_statistics == 12);
  CHECK(train::layer_extra_buffers(pool, N, true).argmax == N * 4 * 3 * 3);
  const auto r = train::layer_extra_buffers(relu, N, true);
  CHECK(r.bn_statistics + r.xhat + r.argmax == 0);
  const auto e = train::layer_extra_buffers(bn, N, false);
  CHECK(e.bn_statistics + e.xhat + e.argmax == 0);
  CHECK(train::layer_extra_buffers(pool, N, false).argmax == N * 4 * 3 * 3);
}

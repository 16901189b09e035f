// Host-side planning of the cuDNN convolutions (cuda/conv_plan.hpp), no GPU needed: descriptor
// parameters from Conv2dGeometry, the algorithm-choice policy (every MathMode, AlgoPolicy and
// ConvPass value), the per-shape cache.
#include <doctest/doctest.h>

#include <vector>

#include "common/errors.hpp"
#include "cuda/conv_plan.hpp"

using namespace wdlab;
using namespace wdlab::cuda;

namespace {
/// cuDNN's documented output size: 1 + (in + 2·pad − ((k − 1)·dilation + 1)) / stride.
int cudnn_out(int in, int pad, int k, int stride, int dilation = 1) {
  return 1 + (in + 2 * pad - ((k - 1) * dilation + 1)) / stride;
}
}  // namespace

TEST_CASE("conv descriptor parameters come from the geometry: packed NCHW, KCRS, pads, strides") {
  const Conv2dGeometry g{.N = 3, .C = 5, .H = 9, .W = 7, .K = 4, .R = 3, .S = 2, .pad = 1, .stride = 2};
  const ConvDescriptorParams d = conv_descriptor_params(g, MathMode::fp32);
  CHECK(d.x == TensorDims{3, 5, 9, 7, 5 * 9 * 7, 9 * 7, 7, 1});
  CHECK(d.y == TensorDims{3, 4, g.P(), g.Q(), 4 * g.P() * g.Q(), g.P() * g.Q(), g.Q(), 1});
  CHECK(d.k == 4);
  CHECK(d.c == 5);
  CHECK(d.r == 3);
  CHECK(d.s == 2);
  CHECK(d.pad_h == 1);
  CHECK(d.pad_w == 1);
  CHECK(d.stride_h == 2);
  CHECK(d.stride_w == 2);
  CHECK(d.dilation_h == 1);
  CHECK(d.dilation_w == 1);
  CHECK(d.cross_correlation);  // PyTorch's conv2d does not flip the kernel
  CHECK(d.math == MathMode::fp32);
  CHECK(conv_descriptor_params(g, MathMode::tf32).math == MathMode::tf32);
}

TEST_CASE("our output size agrees with cuDNN's formula over a registry of geometries") {
  int checked = 0;
  for (int H : {1, 4, 7, 32})
    for (int R : {1, 2, 3})
      for (int pad : {0, 1, 2})
        for (int stride : {1, 2, 3}) {
          const Conv2dGeometry g{.N = 2, .C = 3, .H = H, .W = H + 1, .K = 4, .R = R, .S = R, .pad = pad, .stride = stride};
          if (H + 2 * pad < R) continue;  // invalid: validate() refuses it (below)
          const ConvDescriptorParams d = conv_descriptor_params(g, MathMode::fp32);
          CHECK(d.y.h == cudnn_out(H, pad, R, stride));
          CHECK(d.y.w == cudnn_out(H + 1, pad, R, stride));
          ++checked;
        }
  MESSAGE(checked << " geometries");
  CHECK(checked > 80);
  // Negative control: a kernel larger than the padded input is refused, naming the field.
  const Conv2dGeometry bad{.N = 1, .C = 1, .H = 2, .W = 2, .K = 1, .R = 5, .S = 5, .pad = 0, .stride = 1};
  CHECK_THROWS_AS(conv_descriptor_params(bad, MathMode::fp32), UsageError);
}

TEST_CASE("algorithm policy: first usable candidate in cuDNN's order, with every filter") {
  const std::vector<AlgoCandidate> ranked{
      {.algo = 7, .status = 9, .workspace_bytes = 0, .deterministic = true, .math = CandidateMath::fma},
      {.algo = 6, .status = 0, .workspace_bytes = 1 << 30, .deterministic = true, .math = CandidateMath::fma},
      {.algo = 5, .status = 0, .workspace_bytes = 100, .deterministic = false, .math = CandidateMath::fma},
      {.algo = 4, .status = 0, .workspace_bytes = 100, .deterministic = true, .math = CandidateMath::tensor_op},
      {.algo = 3, .status = 0, .workspace_bytes = 200, .deterministic = true, .math = CandidateMath::fma},
  };
  const std::size_t limit = 1 << 20;
  for (const ConvPass pass : {ConvPass::forward, ConvPass::backward_data, ConvPass::backward_filter}) {
    // fastest + fp32: skips the failed (7), the too-large (6); 5 is non-deterministic but allowed.
    const AlgoChoice a = choose_algorithm(pass, ranked, AlgoPolicy::fastest, MathMode::fp32, limit, "g");
    CHECK(a.pass == pass);
    CHECK(a.algo == 5);
    CHECK_FALSE(a.deterministic);
    // deterministic + fp32: 5 refused, 4 uses tensor ops (TF32), so 3.
    const AlgoChoice b = choose_algorithm(pass, ranked, AlgoPolicy::deterministic, MathMode::fp32, limit, "g");
    CHECK(b.algo == 3);
    CHECK(b.deterministic);
    CHECK(b.workspace_bytes == 200);
    // deterministic + tf32: tensor ops allowed, so 4.
    CHECK(choose_algorithm(pass, ranked, AlgoPolicy::deterministic, MathMode::tf32, limit, "g").algo == 4);
    // A limit that admits the large one.
    CHECK(choose_algorithm(pass, ranked, AlgoPolicy::deterministic, MathMode::fp32, std::size_t(1) << 31, "g").algo == 6);
  }
  CHECK(AlgoChoice{ConvPass::backward_filter, 3, 200, true}.describe().find("backward_filter algo 3 (deterministic") == 0);
}

TEST_CASE("fp32 takes candidates cuDNN reports as CUDNN_DEFAULT_MATH, refuses tensor-op ones") {
  // cuDNN 9 may report CUDNN_DEFAULT_MATH for every FP32 candidate of an FMA descriptor; refusing
  // those (as "not FMA") left every convolution without an algorithm.
  const std::vector<AlgoCandidate> all_default{
      {.algo = 1, .status = 0, .workspace_bytes = 0, .deterministic = true, .math = CandidateMath::default_math},
      {.algo = 0, .status = 0, .workspace_bytes = 0, .deterministic = true, .math = CandidateMath::default_math}};
  for (const AlgoPolicy policy : {AlgoPolicy::fastest, AlgoPolicy::deterministic, AlgoPolicy::exact}) {
    CAPTURE(to_string(policy));
    const AlgoChoice c = choose_algorithm(ConvPass::forward, all_default, policy, MathMode::fp32, 0, "g");
    CHECK(c.algo == 1);
    CHECK(c.math == CandidateMath::default_math);
  }
  // Negative control: tensor-op candidates alone have no answer under fp32, and the refusal names
  // the math type; under tf32 the first one runs.
  const std::vector<AlgoCandidate> tensor{
      {.algo = 1, .status = 0, .workspace_bytes = 0, .deterministic = true, .math = CandidateMath::tensor_op}};
  CHECK_THROWS_WITH_AS(choose_algorithm(ConvPass::forward, tensor, AlgoPolicy::fastest, MathMode::fp32, 0, "g"),
                       doctest::Contains("algo 1: math tensor_op under fp32"), DeviceError);
  CHECK(choose_algorithm(ConvPass::forward, tensor, AlgoPolicy::fastest, MathMode::tf32, 0, "g").math ==
        CandidateMath::tensor_op);
  CHECK(math_allowed(MathMode::fp32, CandidateMath::fma));
  CHECK(math_allowed(MathMode::fp32, CandidateMath::default_math));
  CHECK_FALSE(math_allowed(MathMode::fp32, CandidateMath::tensor_op));
  for (const auto m : {CandidateMath::fma, CandidateMath::default_math, CandidateMath::tensor_op})
    CHECK(math_allowed(MathMode::tf32, m));
}

TEST_CASE("exact policy: deterministic and transform-free only (no FFT, no Winograd)") {
  // Each pass's ranking as cuDNN might give it: a Winograd/FFT algorithm first, then a GEMM one.
  struct PassCase {
    ConvPass pass;
    int transform_algo, gemm_algo;
  };
  const PassCase cases[] = {{ConvPass::forward, 6, 1}, {ConvPass::backward_data, 4, 1},
                            {ConvPass::backward_filter, 2, 1}, {ConvPass::forward, 4, 0}};
  for (const PassCase& pc : cases) {
    const std::vector<AlgoCandidate> ranked{
        {.algo = pc.transform_algo, .status = 0, .workspace_bytes = 10, .deterministic = true, .math = CandidateMath::fma},
        {.algo = pc.gemm_algo, .status = 0, .workspace_bytes = 10, .deterministic = true, .math = CandidateMath::fma},
    };
    // Control: the deterministic policy takes the transform (it is deterministic).
    CHECK(choose_algorithm(pc.pass, ranked, AlgoPolicy::deterministic, MathMode::fp32, 1 << 20, "g").algo ==
          pc.transform_algo);
    CHECK(choose_algorithm(pc.pass, ranked, AlgoPolicy::exact, MathMode::fp32, 1 << 20, "g").algo == pc.gemm_algo);
  }
  // Transform-free yet non-deterministic: refused under exact too.
  const std::vector<AlgoCandidate> nondet{
      {.algo = 0, .status = 0, .workspace_bytes = 0, .deterministic = false, .math = CandidateMath::fma}};
  CHECK_THROWS_WITH_AS(choose_algorithm(ConvPass::backward_filter, nondet, AlgoPolicy::exact, MathMode::fp32, 0, "g"),
                       doctest::Contains("algo 0: non-deterministic"), DeviceError);
  // The classification itself, per pass (cuDNN's enum values; static_asserted in cuda/conv.cpp).
  for (int a : {0, 1, 2, 3}) CHECK(transform_free(ConvPass::forward, a));
  for (int a : {4, 5, 6, 7}) CHECK_FALSE(transform_free(ConvPass::forward, a));
  for (int a : {0, 1}) CHECK(transform_free(ConvPass::backward_data, a));
  for (int a : {2, 3, 4, 5}) CHECK_FALSE(transform_free(ConvPass::backward_data, a));
  for (int a : {0, 1, 3}) CHECK(transform_free(ConvPass::backward_filter, a));
  for (int a : {2, 4, 5, 6}) CHECK_FALSE(transform_free(ConvPass::backward_filter, a));
  CHECK(to_string(AlgoPolicy::exact) == "exact");
}

TEST_CASE("algorithm policy refuses loudly when nothing qualifies (no silent fallback)") {
  const std::vector<AlgoCandidate> ranked{
      {.algo = 1, .status = 3, .workspace_bytes = 0, .deterministic = true, .math = CandidateMath::fma},
      {.algo = 2, .status = 0, .workspace_bytes = 0, .deterministic = false, .math = CandidateMath::fma},
  };
  CHECK_THROWS_WITH_AS(
      choose_algorithm(ConvPass::backward_filter, ranked, AlgoPolicy::deterministic, MathMode::fp32, 0, "conv N=1"),
      doctest::Contains("algo 1: status 3; algo 2: non-deterministic"), DeviceError);
  CHECK_THROWS_WITH_AS(choose_algorithm(ConvPass::forward, {}, AlgoPolicy::fastest, MathMode::fp32, 0, "s"),
                       doctest::Contains("no candidates"), DeviceError);
  // Control: the same list under the fastest policy has an answer.
  CHECK(choose_algorithm(ConvPass::backward_filter, ranked, AlgoPolicy::fastest, MathMode::fp32, 0, "s").algo == 2);
}

TEST_CASE("algorithm cache: one entry per pass, shape, math and policy - the largest workspace") {
  AlgoCache cache;
  const Conv2dGeometry g{.N = 8, .C = 3, .H = 32, .W = 32, .K = 16, .R = 3, .S = 3, .pad = 1, .stride = 1};
  Conv2dGeometry g2 = g;
  g2.N = 9;
  const auto k = AlgoCache::key(ConvPass::forward, g, MathMode::fp32, AlgoPolicy::fastest);
  CHECK(cache.find(k) == nullptr);
  cache.insert(k, AlgoChoice{ConvPass::forward, 1, 1000, true});
  REQUIRE(cache.find(k) != nullptr);
  CHECK(cache.find(k)->algo == 1);
  for (const auto& other : {AlgoCache::key(ConvPass::backward_data, g, MathMode::fp32, AlgoPolicy::fastest),
                            AlgoCache::key(ConvPass::forward, g2, MathMode::fp32, AlgoPolicy::fastest),
                            AlgoCache::key(ConvPass::forward, g, MathMode::tf32, AlgoPolicy::fastest),
                            AlgoCache::key(ConvPass::forward, g, MathMode::fp32, AlgoPolicy::deterministic)})
    CHECK(cache.find(other) == nullptr);
  cache.insert(AlgoCache::key(ConvPass::backward_filter, g, MathMode::fp32, AlgoPolicy::fastest),
               AlgoChoice{ConvPass::backward_filter, 0, 5000, false});
  CHECK(cache.size() == 2);
  CHECK(cache.max_workspace_bytes() == 5000);
  const auto lines = cache.describe();
  REQUIRE(lines.size() == 2);
  CHECK(lines[0].find("N=8 C=3 H=32 W=32 K=16") == 0);
  CHECK(lines[1].find("non-deterministic") != std::string::npos);  // the record says so
}

TEST_CASE("mode names") {
  CHECK(to_string(MathMode::fp32) == "fp32");
  CHECK(to_string(MathMode::tf32) == "tf32");
  CHECK(to_string(AlgoPolicy::fastest) == "fastest");
  CHECK(to_string(AlgoPolicy::deterministic) == "deterministic");
  CHECK(to_string(ConvPass::forward) == "forward");
  CHECK(to_string(ConvPass::backward_data) == "backward_data");
  CHECK(to_string(ConvPass::backward_filter) == "backward_filter");
}

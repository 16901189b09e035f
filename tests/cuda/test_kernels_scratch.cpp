// The device-memory plan's reduction scratch (train::reduction_scratch_doubles, which
// CudaBackend::activations allocates) against the launches that fill it, run by the host
// launcher with the lanes and chunks the backend launches with (common/reduction_layout.hpp, the
// one home of the split): every launch writes inside the counted scratch, and the largest fills
// it exactly. No GPU needed.
#include <doctest/doctest.h>

#include <algorithm>
#include <limits>
#include <vector>

#include "common/model_zoo.hpp"
#include "common/train/device_memory_plan.hpp"
#include "cuda/kernels/batchnorm.hpp"
#include "cuda/kernels/host_launch.hpp"
#include "cuda/kernels/reduce.hpp"

using namespace wdlab;
using namespace wdlab::cuda::kernels;

namespace {

constexpr double kUnwritten = -1.5e300;
constexpr std::size_t kGuard = 64;

/// Entries a launch wrote into a scratch of `size` doubles followed by kGuard guard entries;
/// -1 if it wrote into the guard.
template <class Launch>
Index written(Index size, Launch launch) {
  std::vector<double> scratch(std::size_t(size) + kGuard, kUnwritten);
  launch(scratch.data());
  for (std::size_t k = std::size_t(size); k < scratch.size(); ++k)
    if (scratch[k] != kUnwritten) return -1;
  Index last = 0;  // one past the last written entry
  for (std::size_t k = 0; k < std::size_t(size); ++k)
    if (scratch[k] != kUnwritten) last = Index(k) + 1;
  return last;
}

/// Every reduction a training pass of `spec` at batch N launches into the activation set's
/// scratch, each run into a scratch of `size` doubles: the largest extent written (-1: overflow).
Index largest_launch(const NetworkSpec& spec, int N, Index size) {
  Index most = 0;
  auto note = [&](Index w) { most = (w < 0 || most < 0) ? -1 : std::max(most, w); };
  for (const Layer& l : spec.layers) {
    const Index C = l.out.C, HW = Index(l.out.H) * l.out.W, m = Index(N) * HW;
    const std::vector<float> ones(std::size_t(Index(N) * C * HW), 1.0f);
    const Index lanes = channel_lanes(m);  // as cuda/reductions.cpp launches
    if (l.kind == LayerKind::batchnorm) {
      std::vector<double> mean(std::size_t(C), 0.5);
      // Statistics (two single sums) and the backward with the fused ReLU (two sums per lane).
      note(written(size, [&](double* p) {
        launch_host(C * lanes, ChannelPartialSums{ones.data(), nullptr, mean.data(), p, C, HW, m, lanes,
                                                  ChannelTerm::centred_square});
      }));
      note(written(size, [&](double* p) {
        launch_host(C * lanes, BnReluPartialSums{ones.data(), ones.data(), ones.data(), nullptr, p, C, HW, m, lanes});
      }));
    }
    if ((l.kind == LayerKind::conv2d || l.kind == LayerKind::dense) && l.bias == Bias::on)
      note(written(size, [&](double* p) {
        launch_host(C * lanes, ChannelPartialSums{ones.data(), nullptr, nullptr, p, C, HW, m, lanes, ChannelTerm::value});
      }));
  }
  for (const ParamInfo& info : spec.params()) {  // the step's Σθ, Σθ², non-finite count per tensor
    const std::vector<float> theta(std::size_t(info.numel()), 1.0f);
    const Index chunks = chunk_count(info.numel(), reduction::kFlatChunk);
    note(written(size, [&](double* p) {
      launch_host(chunks, FlatPartialStats{theta.data(), p, info.numel(), reduction::kFlatChunk});
    }));
  }
  return most;
}

}  // namespace

TEST_CASE("reduction scratch: the memory plan's count holds every launch's partials, and the largest fills it") {
  zoo::ConvOptions conv;  // BN, biases on
  zoo::MlpOptions mlp;
  mlp.depth = 1;
  struct Case {
    NetworkSpec spec;
    int N;
  };
  // A BN convnet at batch 2 (lanes of one entry) and 600 (the first BN's 38,400 entries per
  // channel clamp at 1024 lanes), and an MLP whose first weight's flat statistics are the largest.
  const std::vector<Case> cases{{zoo::small_convnet(Shape{3, 8, 8}, 10, 4, conv), 2},
                                {zoo::small_convnet(Shape{3, 8, 8}, 10, 4, conv), 600},
                                {zoo::mlp(Shape{1, 28, 28}, 10, mlp), 3}};
  for (const Case& c : cases) {
    CAPTURE(c.spec.model);
    CAPTURE(c.N);
    const Index plan = train::reduction_scratch_doubles(c.spec, c.N, true);
    CHECK(largest_launch(c.spec, c.N, plan) == plan);
    // Control: one double less and the largest launch runs into the guard.
    CHECK(largest_launch(c.spec, c.N, plan - 1) == -1);
  }
  // The counts, by hand: convnet at 600, first BN: 2 sums × 4 channels × 1024 lanes; at 2: 2 × 4 ×
  // ⌈128/32⌉; MLP: the 784×1000 weight's ⌈784000/1024⌉ = 766 chunks × 3.
  CHECK(train::reduction_scratch_doubles(cases[1].spec, 600, true) == 2 * 4 * 1024);
  CHECK(train::reduction_scratch_doubles(cases[0].spec, 2, true) == 2 * 4 * 4);
  CHECK(train::reduction_scratch_doubles(cases[2].spec, 3, true) == 3 * 766);
}

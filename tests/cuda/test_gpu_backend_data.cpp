// CudaBackend with the data resident on the device (set_resident_data, train_step_ids,
// evaluate_ids) against the same backend fed the trainer's host batches (HostBatcher, augmented
// on the CPU): the same losses, hits and parameters bit for bit over three augmented steps, the
// same evaluation; an augmentation step shifted by one must change the losses (negative control).
// Needs a GPU: require_gpu_or_skip() first (exit 77 without one, reported as skipped).
#include <doctest/doctest.h>

#include <cstdint>
#include <vector>

#include "common/data/dataset.hpp"
#include "common/data/transforms.hpp"
#include "common/model_zoo.hpp"
#include "common/philox.hpp"
#include "common/train/batching.hpp"
#include "common/train/device_memory_plan.hpp"
#include "cuda/backend.hpp"
#include "cuda/check.hpp"
#include "cuda/context.hpp"
#include "cuda/staging_buffer.hpp"
#include "gpu_guard.hpp"
#include "reference/init.hpp"
#include "reference/net/params.hpp"

using namespace wdlab;
using wdlab::cuda::testing::require_gpu_or_skip;

namespace {

data::Dataset random_set(int n, int classes, std::uint64_t stream) {
  data::Dataset d;
  d.name = "gpu-data";
  d.channels = 3;
  d.height = 8;
  d.width = 8;
  d.num_classes = classes;
  d.images.resize(std::size_t(n) * d.image_size());
  for (std::size_t i = 0; i < d.images.size(); ++i) d.images[i] = float(rng::normal(41, rng::Purpose::theory, stream, i));
  for (int i = 0; i < n; ++i) d.labels.push_back(i % classes);
  d.validate();
  return d;
}

struct Net {
  NetworkSpec spec = zoo::small_convnet(Shape{3, 8, 8}, 4, 4, zoo::ConvOptions{});
  std::vector<std::vector<float>> params;
  optim::OptimConfig config;
  std::vector<char> decays;
  Net() {
    const auto p = ref::init_params<float>(spec, 5, ref::Init::glorot_uniform);
    for (std::size_t i = 0; i < p.info.size(); ++i) params.push_back(ref::to_pytorch_order(p.info[i], p.values[i]));
    config.reg.kind = optim::Regularization::wd;
    config.reg.weight_decay = 5e-4;
    for (const auto& info : spec.params()) decays.push_back(info.trainable() ? 1 : 0);
  }
  cuda::CudaBackend backend() const {
    return cuda::CudaBackend(spec, params, config, decays, 0, cuda::BackendOptions{.policy = cuda::AlgoPolicy::deterministic});
  }
};

struct Trace {
  std::vector<double> loss;
  std::vector<std::int64_t> correct;
};

}  // namespace

TEST_CASE("gpu: CudaBackend on resident data matches host batches bit for bit (3 augmented steps, evaluation)") {
  require_gpu_or_skip();
  const Net net;
  const data::Dataset train_set = random_set(29, 4, 1), test_set = random_set(11, 4, 2);
  const int B = 8, steps = 3;
  const std::uint64_t seed = 9;
  const auto order = data::epoch_permutation(train_set.size(), seed, 0);
  auto run = [&](train::DataPath path, std::uint64_t step_shift, cuda::CudaBackend& be) {
    Trace t;
    train::HostBatcher host;
    std::vector<std::int64_t> ids;
    if (path == train::DataPath::resident) be.set_resident_data(train::DataSplit::train, train::view_of(train_set));
    for (int k = 0; k < steps; ++k) {
      const std::span<const std::uint32_t> ids32(order.data() + k * B, std::size_t(B));
      const train::AugmentSpec aug{train::Augment::on, seed, std::uint64_t(k) + step_shift};
      const double lr = 0.05;
      train::StepStats s;
      if (path == train::DataPath::resident) {
        train::widen_ids(ids32, ids);
        s = be.train_step_ids(train::IdBatch{train::DataSplit::train, ids, aug}, lr, k);
      } else {
        s = be.train_step(host.fill(train_set, ids32, aug), lr, k);
      }
      REQUIRE(s.finite);
      t.loss.push_back(s.loss);
      t.correct.push_back(s.correct);
    }
    return t;
  };
  cuda::CudaBackend host_be = net.backend(), res_be = net.backend();
  const Trace host = run(train::DataPath::host_batches, 0, host_be);
  const Trace res = run(train::DataPath::resident, 0, res_be);
  for (int k = 0; k < steps; ++k) {
    CAPTURE(k);
    CHECK(res.loss[std::size_t(k)] == host.loss[std::size_t(k)]);  // bit for bit, no tolerance
    CHECK(res.correct[std::size_t(k)] == host.correct[std::size_t(k)]);
  }
  CHECK(res_be.parameters() == host_be.parameters());

  // Evaluation of a second set, by id with a partial last batch, against host batches.
  res_be.set_resident_data(train::DataSplit::test, train::view_of(test_set));
  train::HostBatcher hb;
  for (const std::vector<std::uint32_t>& part : {std::vector<std::uint32_t>{0, 1, 2, 3, 4, 5, 6, 7},
                                                 std::vector<std::uint32_t>{8, 9, 10}}) {
    std::vector<std::int64_t> ids;
    train::widen_ids(part, ids);
    const train::EvalStats a = res_be.evaluate_ids(train::IdBatch{train::DataSplit::test, ids, {}});
    const train::EvalStats b = host_be.evaluate(hb.fill(test_set, part, {}));
    CHECK(a.loss_sum == b.loss_sum);
    CHECK(a.correct == b.correct);
    CHECK(a.n == b.n);
  }

  // Negative control: the next step's augmentation draws give other losses.
  cuda::CudaBackend shifted_be = net.backend();
  const Trace shifted = run(train::DataPath::resident, 1, shifted_be);
  CHECK(shifted.loss != host.loss);
}

TEST_CASE("gpu: back-to-back staged uploads each deliver their own ids while the stream is busy") {
  require_gpu_or_skip();
  // The factor pass stages batch after batch with no read-back between them. A slow copy queued
  // first keeps the stream busy, so without the staging's wait every later copy would read the
  // pinned buffer after the host had already overwritten it with the last batch's ids.
  cuda::Context ctx(0);
  const cudaStream_t s = ctx.stream();
  cuda::DeviceBuffer<float> big(std::size_t(1) << 28), big2(std::size_t(1) << 28);  // 2 × 1 GiB
  WDLAB_CUDA_CHECK(cudaMemsetAsync(big.data(), 0, big.size() * sizeof(float), s));
  WDLAB_CUDA_CHECK(cudaMemcpyAsync(big2.data(), big.data(), big.size() * sizeof(float), cudaMemcpyDeviceToDevice, s));
  cuda::StagingBuffer<std::int64_t> staging;
  constexpr int kBatches = 16, kIds = 512;
  std::vector<cuda::DeviceBuffer<std::int64_t>> dst;
  for (int k = 0; k < kBatches; ++k) {
    dst.emplace_back(std::size_t(kIds));
    std::vector<std::int64_t> ids(kIds);
    for (int i = 0; i < kIds; ++i) ids[std::size_t(i)] = std::int64_t(k) * 100000 + i;
    staging.upload(ids, dst.back().data(), s);
  }
  WDLAB_CUDA_CHECK(cudaStreamSynchronize(s));
  for (int k = 0; k < kBatches; ++k) {
    std::vector<std::int64_t> got(kIds);
    WDLAB_CUDA_CHECK(cudaMemcpy(got.data(), dst[std::size_t(k)].data(), kIds * sizeof(std::int64_t), cudaMemcpyDeviceToHost));
    CAPTURE(k);
    CHECK(got.front() == std::int64_t(k) * 100000);
    CHECK(got.back() == std::int64_t(k) * 100000 + kIds - 1);
  }
}

TEST_CASE("gpu: evaluation sets hold no cotangents and a new size frees the old set (device memory)") {
  require_gpu_or_skip();
  // A convnet wide enough that one activation set is tens of MiB, so cudaMemGetInfo sees it
  // above the allocator's granularity.
  const NetworkSpec spec = zoo::small_convnet(Shape{3, 32, 32}, 10, 32, zoo::ConvOptions{});
  std::vector<std::vector<float>> params;
  const auto p = ref::init_params<float>(spec, 5, ref::Init::glorot_uniform);
  for (std::size_t i = 0; i < p.info.size(); ++i) params.push_back(ref::to_pytorch_order(p.info[i], p.values[i]));
  const optim::OptimConfig optim;
  const std::vector<char> decays(spec.params().size(), 0);
  cuda::CudaBackend be(spec, params, optim, decays, 0, cuda::BackendOptions{.policy = cuda::AlgoPolicy::deterministic});
  data::Dataset d = random_set(512, 10, 7);
  d.channels = 3;
  d.height = d.width = 32;
  d.images.assign(std::size_t(512) * 3 * 32 * 32, 0.25f);
  be.set_resident_data(train::DataSplit::test, train::view_of(d));
  const auto used = [] {
    std::size_t free = 0, total = 0;
    WDLAB_CUDA_CHECK(cudaMemGetInfo(&free, &total));
    return double(total - free);
  };
  const auto eval_at = [&](int n) {
    std::vector<std::int64_t> ids(static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) ids[std::size_t(i)] = i;
    CHECK(be.evaluate_ids(train::IdBatch{train::DataSplit::test, ids, {}}).n == n);
    WDLAB_CUDA_CHECK(cudaDeviceSynchronize());
    return used();
  };
  const double base = used();
  const double at512 = eval_at(512) - base;
  const double at256 = eval_at(256) - base;  // the 512 set is freed before the 256 one is made
  const double again = eval_at(512) - base;
  const double plan512 = double(train::activation_bytes(spec, 512, false));
  MESSAGE("eval set 512: " << at512 / (1 << 20) << " MiB (plan " << plan512 / (1 << 20) << " MiB), then 256: "
                           << at256 / (1 << 20) << " MiB, then 512: " << again / (1 << 20) << " MiB");
  CHECK(at256 < 0.75 * at512);          // not both sets at once
  CHECK(again < 1.1 * at512);           // and nothing kept from the 256 set
  CHECK(at512 > 0.7 * plan512);         // the set is there (cuDNN's workspace comes on top)
}

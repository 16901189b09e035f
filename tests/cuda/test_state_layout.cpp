// Checkpoints interchangeable with the reference (cuda/state_layout.hpp), no GPU needed: the
// optimizer-state tensors the CUDA backend writes from its PyTorch-order buffers are, byte for
// byte, what the float reference writes (optim_layout 2); and back.
#include <doctest/doctest.h>

#include <map>
#include <string>
#include <vector>

#include "common/errors.hpp"
#include "common/network_spec.hpp"
#include "common/train/optim_layout.hpp"
#include "common/optim/optim_config.hpp"
#include "cuda/state_layout.hpp"
#include "reference/backend.hpp"

using namespace wdlab;

namespace {

NetworkSpec small_convnet() {
  SpecBuilder b("convnet", Shape{2, 5, 5}, 3);
  b.conv("features.0", 4, 3, 1, 1, Bias::on);
  b.batchnorm("features.1");
  b.relu();
  b.maxpool(2, 2);
  b.flatten();
  b.dense("classifier", 3, Bias::on);
  return b.finish();
}

/// One reference SGD/Adam step on a fixed batch, so the optimizer state is not zero.
ref::ReferenceBackend<float> stepped(const NetworkSpec& spec, optim::OptimizerKind kind) {
  optim::OptimConfig cfg;
  cfg.kind = kind;
  ref::ReferenceBackend<float> be(spec, ref::init_params<float>(spec, 5, ref::Init::glorot_uniform), cfg, 5);
  const int n = 4;
  std::vector<float> images(std::size_t(spec.input.size() * n));
  for (std::size_t i = 0; i < images.size(); ++i) images[i] = float(int(i % 11) - 5) / 4.0f;
  const std::vector<std::int32_t> labels{0, 1, 2, 1};
  be.train_step(train::HostBatch{images, labels, n}, 0.1, 0);
  return be;
}

}  // namespace

TEST_CASE("optimizer state tensors equal the reference's, byte for byte, for SGD and Adam") {
  const NetworkSpec spec = small_convnet();
  for (const auto kind : {optim::OptimizerKind::sgd, optim::OptimizerKind::adam}) {
    auto be = stepped(spec, kind);
    const io::SafetensorsFile f = be.state();
    const auto named = be.optimizer().state();
    int checked = 0;
    for (const auto& [name, m] : named) {
      if (name == "optim.adam.t") {
        CHECK(cuda::scalar_state_tensor(float(m(0, 0))).data == f.at(name).data);
        CHECK(cuda::scalar_state_tensor(float(m(0, 0))).shape == f.at(name).shape);
        continue;
      }
      const std::string param = name.substr(name.find('.', name.find('.', 6) + 1) + 1);
      const std::string pname = kind == optim::OptimizerKind::sgd ? name.substr(std::string("optim.momentum.").size()) : param;
      const int i = be.params().find(pname);
      REQUIRE_MESSAGE(i >= 0, name);
      const ParamInfo& info = be.params().info[std::size_t(i)];
      // What the CUDA backend holds: the state in PyTorch order, like its parameters.
      const std::vector<float> pytorch = ref::to_pytorch_order(info, m);
      const io::Tensor t = cuda::optimizer_state_tensor(info, pytorch);
      CHECK_MESSAGE(t.shape == f.at(name).shape, name);
      CHECK_MESSAGE(t.data == f.at(name).data, name);
      CHECK(cuda::optimizer_state_values(info, f.at(name), name) == pytorch);
      ++checked;
    }
    MESSAGE(optim::to_string(kind) << ": " << checked << " state tensors identical");
    CHECK(checked >= 4);
  }
}

TEST_CASE("optimizer state layout: PyTorch's (the parameter's shape, row-major), layout 1 only after the upgrade") {
  const ParamInfo w{.name = "w", .shape = {2, 3}, .layer = 0, .role = ParamRole::weight};
  const std::vector<float> v{1, 2, 3, 4, 5, 6};  // row-major 2×3, as the device holds it
  const io::Tensor t = cuda::optimizer_state_tensor(w, v);
  CHECK(t.shape == std::vector<std::int64_t>{2, 3});
  CHECK(t.to_f32() == v);
  CHECK(cuda::optimizer_state_values(w, t, "w") == v);
  // Control: the same state in layout 1 (the column-major compute matrix, shape [3, 2]) is
  // refused as it stands, and reads back right once train::upgrade_optim_layout converted it.
  const io::Tensor v1 = io::Tensor::from_f32({3, 2}, std::vector<float>{1, 4, 2, 5, 3, 6});
  CHECK_THROWS_AS(cuda::optimizer_state_values(w, v1, "optim.momentum.w"), DataError);
  io::SafetensorsFile old;
  old.tensors["optim.momentum.w"] = v1;
  const std::vector<ParamInfo> params{w};
  train::upgrade_optim_layout(old, params);
  CHECK(cuda::optimizer_state_values(w, old.at("optim.momentum.w"), "w") == v);
  const io::Tensor wrong = io::Tensor::from_f32({3, 2}, v);
  CHECK_THROWS_AS(cuda::optimizer_state_values(w, wrong, "optim.momentum.w"), DataError);
  const ParamInfo b{.name = "b", .shape = {4}, .layer = 0, .role = ParamRole::bias};
  CHECK(cuda::optimizer_state_tensor(b, std::vector<float>{1, 2, 3, 4}).shape == std::vector<std::int64_t>{4});
  CHECK(cuda::scalar_state_tensor(3.0f).shape.empty());
  CHECK(cuda::compute_matrix_shape(ParamInfo{.name = "c", .shape = {8, 3, 3, 3}}) == std::pair<std::int64_t, std::int64_t>{8, 27});
}

TEST_CASE("the CUDA backend's decay flags: one per tensor, never a running statistic") {
  // What CudaBackend checks before any GPU work (common/optim/optim_config.hpp check_decay_flags).
  const NetworkSpec spec = small_convnet();
  std::vector<char> flags(spec.params().size(), 0);
  CHECK_NOTHROW(optim::check_decay_flags(spec, flags));
  optim::RegConfig reg{.kind = optim::Regularization::wd, .weight_decay = 5e-4};
  CHECK_NOTHROW(optim::check_decay_flags(spec, optim::decay_flags(spec, reg)));
  flags.pop_back();
  CHECK_THROWS_AS(optim::check_decay_flags(spec, flags), InternalError);
  flags.assign(spec.params().size(), 1);  // marks the running statistics too
  CHECK_THROWS_WITH_AS(optim::check_decay_flags(spec, flags), doctest::Contains("running statistic"), InternalError);
}

TEST_CASE("a checkpoint in the CUDA backend's layout loads in the float reference, which steps on identically") {
  // What CudaBackend::state() writes from its PyTorch-order buffers, built here from a stepped
  // reference's parameters and optimizer state; a fresh reference (other initial values) loads it.
  const NetworkSpec spec = small_convnet();
  const int n = 4;
  std::vector<float> images(std::size_t(spec.input.size() * n));
  for (std::size_t i = 0; i < images.size(); ++i) images[i] = float(int(i % 7) - 3) / 3.0f;
  const std::vector<std::int32_t> labels{2, 0, 1, 1};
  const train::HostBatch batch{images, labels, n};
  for (const auto kind : {optim::OptimizerKind::sgd, optim::OptimizerKind::adam}) {
    auto be = stepped(spec, kind);
    const auto& p = be.params();
    std::map<std::string, ref::Mat<float>> named;
    for (const auto& [name, m] : be.optimizer().state()) named[name] = m;
    auto cuda_layout = [&](bool pytorch_params) {
      io::SafetensorsFile f;
      for (std::size_t i = 0; i < p.info.size(); ++i) {
        const ParamInfo& info = p.info[i];
        const std::vector<float> values = pytorch_params ? ref::to_pytorch_order(info, p.values[i])
                                                         : std::vector<float>(p.values[i].data(), p.values[i].data() + p.values[i].size());
        f.tensors[info.name] = io::Tensor::from_f32(info.shape, values);
        if (!info.trainable()) continue;
        const std::vector<std::string> names =
            kind == optim::OptimizerKind::sgd ? std::vector<std::string>{"optim.momentum." + info.name}
                                            : std::vector<std::string>{"optim.adam.m." + info.name, "optim.adam.v." + info.name};
        for (const auto& nm : names)
          f.tensors[nm] = cuda::optimizer_state_tensor(info, ref::to_pytorch_order(info, named.at(nm)));
      }
      if (kind == optim::OptimizerKind::adam) f.tensors["optim.adam.t"] = cuda::scalar_state_tensor(float(named.at("optim.adam.t")(0, 0)));
      train::mark_optim_layout(f);  // as CudaBackend::state()
      f.metadata["backend"] = "cuda";
      f.metadata["precision"] = "float";
      return f;
    };
    optim::OptimConfig cfg;
    cfg.kind = kind;
    ref::ReferenceBackend<float> fresh(spec, ref::init_params<float>(spec, 77, ref::Init::glorot_uniform), cfg, 5);
    fresh.load_state(cuda_layout(true));
    const io::SafetensorsFile a = fresh.state(), b = be.state();
    int same = 0;
    for (const auto& [name, t] : b.tensors) {
      CHECK_MESSAGE(a.tensors.at(name).data == t.data, name);
      ++same;
    }
    CHECK(a.tensors.size() == b.tensors.size());
    MESSAGE(optim::to_string(kind) << ": " << same << " tensors identical after the load");
    const auto s1 = fresh.train_step(batch, 0.1, 1), s2 = be.train_step(batch, 0.1, 1);
    CHECK(s1.loss == s2.loss);  // the same float computation on the same state
    CHECK(fresh.state().tensors.at("features.0.weight").data == be.state().tensors.at("features.0.weight").data);
    // Control: parameters in the compute layout instead of PyTorch order load (same sizes) but
    // are a different network.
    ref::ReferenceBackend<float> wrong(spec, ref::init_params<float>(spec, 77, ref::Init::glorot_uniform), cfg, 5);
    wrong.load_state(cuda_layout(false));
    CHECK(wrong.state().tensors.at("classifier.weight").data != b.tensors.at("classifier.weight").data);
  }
}

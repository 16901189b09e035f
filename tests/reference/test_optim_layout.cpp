// Optimizer state in checkpoints (common/train/optim_layout.hpp): written in PyTorch's layout
// (optim_layout 2: per-parameter state with its parameter's shape, row-major), and checkpoints
// written before the change (optim_layout 1: the compute matrix column-major with shape
// [cols, rows]) still load, converted. The old files are fixtures that `wdlab train` at commit
// f9ad431 wrote (tests/fixtures/README.md says how); the expected values are read from their bytes
// here, by the version-1 rule, not by the code under test.
#include <doctest/doctest.h>

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "common/errors.hpp"
#include "common/io/safetensors.hpp"
#include "common/model_zoo.hpp"
#include "common/train/optim_layout.hpp"
#include "reference/backend.hpp"

using namespace wdlab;
namespace fs = std::filesystem;

namespace {

const fs::path kFixtures = fs::path(WDLAB_SOURCE_DIR) / "tests" / "fixtures";

struct Fixture {
  const char* file;
  NetworkSpec spec;
  optim::OptimizerKind kind;
  std::size_t optim_tensors;  // how many optim.* tensors the old file holds
};

std::vector<Fixture> fixtures() {
  const Shape fm{1, 28, 28};
  zoo::MlpOptions mlp;
  mlp.depth = 1;
  mlp.width = 4;
  zoo::ConvOptions conv;  // BN on, biases on
  return {
      {"optim-layout-1-mlp-sgd.safetensors", zoo::mlp(fm, 10, mlp), optim::OptimizerKind::sgd, 4},
      {"optim-layout-1-mlp-adam.safetensors", zoo::mlp(fm, 10, mlp), optim::OptimizerKind::adam, 9},
      {"optim-layout-1-convnet-bn-kfac-f.safetensors", zoo::small_convnet(fm, 10, 1, conv),
       optim::OptimizerKind::kfac_f, 5 * 5 + 10 + 2},
  };
}

/// The version-1 reading, straight from the bytes: M(r, c) = data[c·rows + r], shape [cols, rows].
ref::Mat<float> v1_matrix(const io::Tensor& t) {
  REQUIRE(t.shape.size() == 2);
  const std::int64_t cols = t.shape[0], rows = t.shape[1];
  const std::vector<float> d = t.to_f32();
  ref::Mat<float> m(rows, cols);
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t c = 0; c < cols; ++c) m(r, c) = d[std::size_t(c * rows + r)];
  return m;
}

ref::ReferenceBackend<float> backend_for(const Fixture& fx) {
  optim::OptimConfig cfg;
  cfg.kind = fx.kind;
  return ref::ReferenceBackend<float>(fx.spec, ref::init_params<float>(fx.spec, 99, ref::Init::glorot_uniform), cfg, 1);
}

}  // namespace

TEST_CASE("checkpoints of optim_layout 1 (written by f9ad431) load: the same optimizer state, rewritten in layout 2") {
  for (const Fixture& fx : fixtures()) {
    CAPTURE(fx.file);
    const io::SafetensorsFile old = io::load(kFixtures / fx.file);
    CHECK(old.metadata.count(train::kOptimLayoutKey) == 0);  // written before the key existed
    std::size_t n_optim = 0;
    for (const auto& [name, t] : old.tensors) n_optim += name.rfind("optim.", 0) == 0;
    REQUIRE(n_optim == fx.optim_tensors);

    auto be = backend_for(fx);
    be.load_state(old);
    // The optimizer holds what the old file meant (version-1 rule applied to its bytes).
    int compared = 0, transposed = 0;
    for (const auto& [name, m] : be.optimizer().state()) {
      CAPTURE(name);
      const ref::Mat<float> want = v1_matrix(old.at(name));
      REQUIRE(m.rows() == want.rows());
      REQUIRE(m.cols() == want.cols());
      CHECK(m == want);
      ++compared;
      transposed += m.rows() > 1 && m.cols() > 1 && m.rows() != m.cols();
    }
    CHECK(std::size_t(compared) == fx.optim_tensors);
    CHECK(transposed >= 1);  // a non-square tensor, where the two layouts differ visibly

    // Written back in layout 2: per-parameter state with its parameter's shape, row-major.
    const io::SafetensorsFile now = be.state();
    CHECK(now.metadata.at(train::kOptimLayoutKey) == "2");
    for (const auto& [name, t] : old.tensors) {
      CAPTURE(name);
      if (name.rfind("optim.", 0) != 0) {
        CHECK(now.at(name).data == t.data);  // parameters untouched
        continue;
      }
      const ref::Mat<float> m = v1_matrix(t);
      const io::Tensor& w = now.at(name);
      const ParamInfo* p = train::state_param(name, be.params().info);
      if (p) CHECK(w.shape == p->shape);
      else if (m.size() == 1) CHECK(w.shape.empty());
      else if (m.rows() == 1) CHECK(w.shape == std::vector<std::int64_t>{m.cols()});
      else CHECK(w.shape == std::vector<std::int64_t>{m.rows(), m.cols()});
      const std::vector<float> v = w.to_f32();
      bool same = v.size() == std::size_t(m.size());
      for (std::int64_t r = 0; same && r < m.rows(); ++r)
        for (std::int64_t c = 0; c < m.cols(); ++c) same = same && v[std::size_t(r * m.cols() + c)] == m(r, c);
      CHECK(same);
    }
    // The new file loads into a fresh backend to the same state (no conversion a second time).
    auto again = backend_for(fx);
    again.load_state(now);
    const io::SafetensorsFile twice = again.state();
    REQUIRE(twice.tensors.size() == now.tensors.size());
    for (const auto& [name, t] : now.tensors) {
      CAPTURE(name);
      CHECK(twice.at(name).shape == t.shape);
      CHECK(twice.at(name).data == t.data);
    }
  }
}

TEST_CASE("optim_layout: a version-1 file read as version 2 is refused, and so is an unknown version") {
  const Fixture fx = fixtures()[0];
  io::SafetensorsFile old = io::load(kFixtures / fx.file);
  io::SafetensorsFile lying = old;
  lying.metadata[train::kOptimLayoutKey] = "2";  // control: the key decides how the bytes are read
  auto be = backend_for(fx);
  CHECK_THROWS_WITH_AS(be.load_state(lying), doctest::Contains("has the wrong shape"), DataError);
  io::SafetensorsFile future = old;
  future.metadata[train::kOptimLayoutKey] = "3";
  CHECK_THROWS_WITH_AS(be.load_state(future), doctest::Contains("optim_layout"), DataError);
  io::SafetensorsFile bent = old;  // a version-1 tensor whose size does not fit its parameter
  bent.tensors["optim.momentum.fc0.bias"] = io::Tensor::from_f32({1, 3}, std::vector<float>{1, 2, 3});
  CHECK_THROWS_WITH_AS(be.load_state(bent), doctest::Contains("optim.momentum.fc0.bias"), DataError);
}

TEST_CASE("optim_layout 2 names: per-parameter prefixes only, exact parameter names") {
  const Fixture fx = fixtures()[2];
  const auto params = fx.spec.params();
  CHECK(train::state_param("optim.momentum.features.0.weight", params) != nullptr);
  CHECK(train::state_param("optim.adam.v.classifier.bias", params)->name == "classifier.bias");
  CHECK(train::state_param("optim.kfac.A.features.0", params) == nullptr);
  CHECK(train::state_param("optim.momentum.features.0", params) == nullptr);
  CHECK(train::state_param("features.0.weight", params) == nullptr);
  CHECK(train::plain_state_shape(1, 1).empty());
  CHECK(train::plain_state_shape(1, 4) == std::vector<std::int64_t>{4});
  CHECK(train::plain_state_shape(3, 3) == std::vector<std::int64_t>{3, 3});
}

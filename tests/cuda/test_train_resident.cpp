// The trainer's resident-data path (Backend::data_path() == resident) against its host-batch
// path, on the CPU. HostResident is a test backend that takes the data sets once and gathers each
// batch from example ids with the device path's kernel bodies (cuda/kernels/gather.hpp, run by
// the host launcher), then hands the gathered batch to a reference backend. A run through it
// must end bit for bit where the same run through host batches ends: every metrics row, every
// state tensor. Negative control: the same wrapper with its augmentation step shifted by one.
#include <doctest/doctest.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "../support/temp_dir.hpp"
#include "common/data/dataset.hpp"
#include "common/model_zoo.hpp"
#include "common/philox.hpp"
#include "common/train/batching.hpp"
#include "common/train/checkpoint.hpp"
#include "common/train/metrics_log.hpp"
#include "common/train/signals.hpp"
#include "common/train/trainer.hpp"
#include "cuda/kernels/gather.hpp"
#include "cuda/kernels/host_launch.hpp"
#include "reference/backend.hpp"
#include "reference/init.hpp"

using namespace wdlab;
namespace fs = std::filesystem;
namespace k = wdlab::cuda::kernels;

namespace {

/// A resident-data backend on the CPU: what CudaBackend does on the device (keep the sets,
/// gather by id, augment with the shared draws), then the inner backend's host-batch call.
class HostResident final : public train::Backend {
 public:
  explicit HostResident(train::Backend& inner, std::uint64_t step_shift = 0) : inner_(inner), shift_(step_shift) {}
  struct Calls {
    int host_steps = 0, id_steps = 0, host_evals = 0, id_evals = 0, host_inits = 0, id_inits = 0;
  } calls;

  std::string describe() const override { return "host-resident(" + inner_.describe() + ")"; }
  void set_nonfinite_policy(train::NonfinitePolicy p) override { inner_.set_nonfinite_policy(p); }
  train::DataPath data_path() const override { return train::DataPath::resident; }
  void set_resident_data(train::DataSplit split, const train::DataView& v) override {
    train::check_view(split, v);
    Set& s = sets_[std::size_t(split)];
    s.images.assign(v.images.begin(), v.images.end());  // a copy: the view may go away
    s.labels.assign(v.labels.begin(), v.labels.end());
    s.C = v.channels;
    s.H = v.height;
    s.W = v.width;
  }
  train::StepStats train_step(const train::HostBatch& b, double lr, std::int64_t it) override {
    ++calls.host_steps;
    return inner_.train_step(b, lr, it);
  }
  train::StepStats train_step_ids(const train::IdBatch& b, double lr, std::int64_t it) override {
    ++calls.id_steps;
    return inner_.train_step(gather(b), lr, it);
  }
  bool wants_factor_init() const override { return inner_.wants_factor_init(); }
  void accumulate_factor_init(const train::HostBatch& b, std::int64_t index) override {
    ++calls.host_inits;
    inner_.accumulate_factor_init(b, index);
  }
  void accumulate_factor_init_ids(const train::IdBatch& b, std::int64_t index) override {
    ++calls.id_inits;
    inner_.accumulate_factor_init(gather(b), index);
  }
  void finish_factor_init() override { inner_.finish_factor_init(); }
  train::EvalStats evaluate(const train::HostBatch& b) override {
    ++calls.host_evals;
    return inner_.evaluate(b);
  }
  train::EvalStats evaluate_ids(const train::IdBatch& b) override {
    ++calls.id_evals;
    return inner_.evaluate(gather(b));
  }
  std::vector<std::pair<std::string, double>> weight_norms() const override { return inner_.weight_norms(); }
  io::SafetensorsFile state() const override { return inner_.state(); }
  void load_state(const io::SafetensorsFile& f) override { inner_.load_state(f); }
  train::MeasureSummary measure_summary(const train::HostBatch& probe, const train::MeasureRequest& req) override {
    return inner_.measure_summary(probe, req);
  }
  void record_weight_steps(train::WeightSteps mode) override { inner_.record_weight_steps(mode); }

 private:
  struct Set {
    std::vector<float> images;
    std::vector<std::int32_t> labels;
    int C = 0, H = 0, W = 0;
  };
  train::HostBatch gather(const train::IdBatch& b) {
    const Set& s = sets_[std::size_t(b.split)];
    REQUIRE_FALSE(s.labels.empty());
    train::check_ids(b, std::int64_t(s.labels.size()));
    const k::Index N = b.n(), m = k::Index(s.C) * s.H * s.W;
    images_.assign(std::size_t(N * m), 0.0f);
    labels_.assign(std::size_t(N), -1);
    const k::GatherMode mode = b.augment.mode == train::Augment::on ? k::GatherMode::augment : k::GatherMode::copy;
    k::launch_host(N * m, k::GatherImages{s.images.data(), images_.data(), b.ids.data(), nullptr, b.augment.seed,
                                          b.augment.step + shift_, s.C, s.H, s.W, b.augment.pad, mode});
    k::launch_host(N, k::GatherLabels{s.labels.data(), labels_.data(), b.ids.data()});
    return train::HostBatch{images_, labels_, int(N)};
  }
  train::Backend& inner_;
  std::uint64_t shift_;
  Set sets_[3];
  std::vector<float> images_;
  std::vector<std::int32_t> labels_;
};

data::Dataset random_set(const char* name, int n, int classes, std::uint64_t stream) {
  data::Dataset d;
  d.name = name;
  d.channels = 3;
  d.height = 8;
  d.width = 8;
  d.num_classes = classes;
  d.images.resize(std::size_t(n) * d.image_size());
  for (std::size_t i = 0; i < d.images.size(); ++i)
    d.images[i] = float(rng::normal(31, rng::Purpose::theory, stream, i));
  for (int i = 0; i < n; ++i) d.labels.push_back(std::int32_t(rng::below(31, rng::Purpose::theory, stream + 100, std::uint64_t(i), std::uint32_t(classes))));
  d.validate();
  return d;
}

struct Setup {
  NetworkSpec spec = zoo::small_convnet(Shape{3, 8, 8}, 4, 2, zoo::ConvOptions{});
  train::Datasets data{random_set("train", 37, 4, 1), random_set("val", 9, 4, 2), random_set("test", 10, 4, 3)};
  optim::OptimConfig optim;
  train::TrainerConfig cfg;
  Setup() {
    optim.reg.kind = optim::Regularization::wd;
    optim.reg.weight_decay = 5e-4;
    cfg.epochs = 2;
    cfg.batch_size = 8;       // 37 = 4·8 + 5: the last 5 of each epoch's order sit out
    cfg.eval_batch_size = 4;  // partial last evaluation batches (9 and 10 examples)
    cfg.seed = 3;
    cfg.augment = train::Augment::on;
    cfg.progress = train::Progress::quiet;
    cfg.lr = [](std::int64_t k, std::int64_t) { return 0.05 / (1.0 + 0.1 * double(k)); };
  }
  ref::ReferenceBackend<float> backend() const {
    return ref::ReferenceBackend<float>(spec, ref::init_params<float>(spec, 7, ref::Init::glorot_uniform), optim, 7);
  }
};

struct Outcome {
  std::vector<std::string> rows;  // metrics.jsonl rows without the wall-clock field
  io::SafetensorsFile state;
};

const nlohmann::json kMeta = {{"config", "{}"}};

fs::path run_dir(const test::TempDir& tmp, const std::string& name) {
  const fs::path d = tmp / name;
  fs::create_directories(d);
  std::ofstream(d / "config.json") << "{}\n";
  return d;
}

Outcome outcome(train::Backend& be, const fs::path& dir) {
  Outcome o;
  for (auto row : train::MetricsLog(dir).rows()) {
    row.erase("epoch_seconds");
    o.rows.push_back(row.dump());
  }
  o.state = be.state();
  return o;
}

Outcome run(train::Backend& be, const Setup& s, const fs::path& dir) {
  train::train(be, s.data, s.cfg, dir, std::nullopt, kMeta);
  return outcome(be, dir);
}

/// Tensor names whose bytes differ, or that one side lacks.
std::vector<std::string> differing(const io::SafetensorsFile& a, const io::SafetensorsFile& b) {
  std::vector<std::string> out;
  for (const auto& [name, t] : a.tensors)
    if (!b.tensors.count(name) || b.tensors.at(name).data != t.data) out.push_back(name);
  for (const auto& [name, t] : b.tensors)
    if (!a.tensors.count(name)) out.push_back(name);
  return out;
}

/// Sets an environment variable for one scope (the trainer's fault hooks read it).
struct ScopedEnv {
  const char* name;
  ScopedEnv(const char* n, const std::string& v) : name(n) { ::setenv(n, v.c_str(), 1); }
  ~ScopedEnv() { ::unsetenv(name); }
};

}  // namespace

TEST_CASE("trainer resident path: batches by id end bit-identical to host batches - a shifted augmentation step differs") {
  const test::TempDir tmp;
  Setup s;
  auto host_be = s.backend();
  const Outcome host = run(host_be, s, run_dir(tmp, "host"));

  auto inner = s.backend();
  HostResident res(inner);
  const Outcome ids = run(res, s, run_dir(tmp, "ids"));
  CHECK(ids.rows == host.rows);
  CHECK(differing(ids.state, host.state).empty());
  // Every step and every evaluation went by id: 2 epochs of 4 steps; per epoch val 9 and test 10
  // examples in batches of 4 (3 + 3); the epoch-0 row also evaluates the 37 training examples (10).
  CHECK(res.calls.id_steps == 8);
  CHECK(res.calls.host_steps == 0);
  CHECK(res.calls.id_evals == 2 * (3 + 3) + (10 + 3 + 3));
  CHECK(res.calls.host_evals == 0);
  REQUIRE(host.rows.size() == 3);  // epochs 0, 1, 2

  // Negative control: the draws of the next step instead of this one.
  auto inner2 = s.backend();
  HostResident shifted(inner2, 1);
  const Outcome bad = run(shifted, s, run_dir(tmp, "shifted"));
  CHECK(bad.rows != host.rows);
  CHECK_FALSE(differing(bad.state, host.state).empty());

  // And without augmentation the shift is harmless: the control fails for the right reason.
  s.cfg.augment = train::Augment::off;
  auto plain_be = s.backend();
  const Outcome plain = run(plain_be, s, run_dir(tmp, "plain"));
  auto inner3 = s.backend();
  HostResident shifted_plain(inner3, 1);
  const Outcome plain_ids = run(shifted_plain, s, run_dir(tmp, "plain-ids"));
  CHECK(plain_ids.rows == plain.rows);
  CHECK(differing(plain_ids.state, plain.state).empty());
  CHECK(plain.rows != host.rows);
}

TEST_CASE("trainer resident path: K-FAC factor initialization by id and a NaN-poisoned step under skip match the host path") {
  const test::TempDir tmp;
  Setup s;
  s.spec = zoo::mlp(Shape{3, 8, 8}, 4, zoo::MlpOptions{.depth = 1, .width = 6});
  s.optim.kind = optim::OptimizerKind::kfac_f;
  s.optim.kfac.factor_init = optim::FactorInit::data_pass;
  s.optim.kfac.t_cov = 2;
  s.optim.kfac.t_inv = 3;
  s.optim.kfac.damping = 3e-2;
  s.cfg.lr = [](std::int64_t, std::int64_t) { return 0.005; };  // K-FAC steps are large: keep it stable
  s.cfg.on_nonfinite = train::NonfinitePolicy::skip;
  const ScopedEnv nan("WDLAB_FAULT_NAN_AT", "2");
  auto host_be = s.backend();
  REQUIRE(host_be.wants_factor_init());
  const Outcome host = run(host_be, s, run_dir(tmp, "host"));

  auto inner = s.backend();
  HostResident res(inner);
  const Outcome ids = run(res, s, run_dir(tmp, "ids"));
  CHECK(ids.rows == host.rows);
  CHECK(differing(ids.state, host.state).empty());
  CHECK(res.calls.id_inits == 4);  // one pass, 4 whole batches, in data order
  CHECK(res.calls.host_inits == 0);
  CHECK(res.calls.host_steps == 1);  // the poisoned step: the hook edits a host batch
  CHECK(res.calls.id_steps == 7);
  bool skipped = false;
  for (const auto& r : host.rows) skipped |= r.find("\"nonfinite\"") != std::string::npos;
  CHECK(skipped);
}

TEST_CASE("trainer resident path: stopped by SIGTERM mid-epoch and resumed by id, it ends where the straight host run ends") {
  const test::TempDir tmp;
  Setup s;
  auto host_be = s.backend();
  const Outcome host = run(host_be, s, run_dir(tmp, "host"));

  const fs::path dir = run_dir(tmp, "resumed");
  {
    auto inner = s.backend();
    HostResident res(inner);
    const ScopedEnv stop("WDLAB_FAULT_SIGTERM_AT", "5");  // epoch 2, after its second step
    CHECK_THROWS_AS(train::train(res, s.data, s.cfg, dir, std::nullopt, kMeta), train::Interrupted);
  }
  const auto from = train::find_resume_point(dir, [](const std::string& m) { FAIL(m); });
  REQUIRE(from);
  CHECK(from->at.epoch == 1);
  CHECK(from->at.batch == 2);
  auto inner = s.backend();  // a fresh process's backend: everything comes from the checkpoint
  HostResident res(inner);
  train::train(res, s.data, s.cfg, dir, from, kMeta);
  const Outcome resumed = outcome(res, dir);
  CHECK(resumed.rows == host.rows);
  CHECK(differing(resumed.state, host.state).empty());
  CHECK(res.calls.id_steps == 2);  // the rest of epoch 2
}

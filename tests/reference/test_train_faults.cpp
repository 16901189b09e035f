// The pieces of "nothing lost" below the command line: checkpoint checksums and the choice of the
// newest valid checkpoint, the metrics log's torn last line, and the reference backend's handling
// of non-finite steps (skip leaves no trace; the layer at fault is named; an indefinite K-FAC
// factor raises damping and is reported instead of producing NaN).
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <cmath>
#include <fstream>
#include <limits>

#include "../support/temp_dir.hpp"
#include "common/errors.hpp"
#include "common/io/safetensors.hpp"
#include "common/model_zoo.hpp"
#include "common/train/checkpoint.hpp"
#include "common/train/metrics_log.hpp"
#include "reference/backend.hpp"
#include "reference/init.hpp"

using namespace wdlab;
using namespace wdlab::ref;
using namespace wdlab::optim;
namespace fs = std::filesystem;

namespace {

io::SafetensorsFile sample_state(float v) {
  io::SafetensorsFile f;
  f.tensors["w"] = io::Tensor::from_f32({2, 2}, std::vector<float>{v, 2, 3, 4});
  return f;
}

struct Tiny {
  NetworkSpec spec = zoo::mlp(Shape{5, 1, 1}, 3, {.depth = 1, .width = 4, .bias = Bias::on});
  std::vector<float> images;
  std::vector<std::int32_t> labels{0, 1, 2, 0, 1, 2};
  Tiny() {
    for (int i = 0; i < 30; ++i) images.push_back(float(std::sin(0.7 * i + 0.3)));
  }
  train::HostBatch batch() const { return {images, labels, 6}; }
};

bool same_state(const io::SafetensorsFile& a, const io::SafetensorsFile& b) {
  if (a.tensors.size() != b.tensors.size()) return false;
  for (const auto& [name, t] : a.tensors)
    if (!b.tensors.count(name) || b.tensors.at(name).data != t.data) return false;
  return true;
}

}  // namespace

TEST_CASE("checkpoint checksum: verifies its own file, detects a flipped data bit and a changed metadata value") {
  auto f = sample_state(1);
  f.metadata["epoch"] = "1";
  train::add_checksum(f);
  CHECK_NOTHROW(train::verify_checksum(f));
  auto flipped = f;
  flipped.tensors["w"].data[5] ^= std::byte{0x01};
  CHECK_THROWS_AS(train::verify_checksum(flipped), DataError);
  auto meta = f;
  meta.metadata["epoch"] = "2";
  CHECK_THROWS_AS(train::verify_checksum(meta), DataError);
  auto none = f;
  none.metadata.erase(train::kChecksumKey);
  CHECK_THROWS_WITH_AS(train::verify_checksum(none), doctest::Contains("no checksum"), DataError);
}

TEST_CASE("find_resume_point: newest valid by name, corrupt and truncated ones set aside and reported") {
  const test::TempDir dir;
  const fs::path run = dir.path();
  const nlohmann::json meta = {{"config", "{}"}};
  train::write_checkpoint(sample_state(1), run, {.epoch = 1, .iteration = 8}, meta, 5);
  train::write_checkpoint(sample_state(2), run, {.epoch = 1, .iteration = 12, .batch = 4}, meta, 5);
  train::write_checkpoint(sample_state(3), run, {.epoch = 2, .iteration = 16}, meta, 5);
  std::vector<std::string> reports;
  auto report = [&](const std::string& m) { reports.push_back(m); };
  auto r = train::find_resume_point(run, report);
  REQUIRE(r);
  CHECK(r->path.filename() == "epoch-0002.safetensors");
  CHECK(r->at.iteration == 16);
  CHECK(reports.empty());
  CHECK(r->file.metadata.at("config_hash") == train::hash_hex("{}"));

  // Truncate the newest: the partial checkpoint of epoch 2 is next (it sorts before epoch-0002).
  fs::resize_file(run / "checkpoints" / "epoch-0002.safetensors", 40);
  r = train::find_resume_point(run, report);
  REQUIRE(r);
  CHECK(r->path.filename() == "epoch-0002-partial-000000004.safetensors");
  CHECK(r->at.batch == 4);
  CHECK(r->at.epoch == 1);
  REQUIRE(reports.size() == 1);
  CHECK(reports[0].find("epoch-0002.safetensors") != std::string::npos);
  CHECK(fs::exists(run / "checkpoints" / "epoch-0002.safetensors.corrupt"));

  // Flip a data byte of that one: the checksum sends the search one further back.
  {
    const fs::path p = run / "checkpoints" / "epoch-0002-partial-000000004.safetensors";
    std::fstream f(p, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(-3, std::ios::end);
    f.put('\x7f');
  }
  r = train::find_resume_point(run, report);
  REQUIRE(r);
  CHECK(r->path.filename() == "epoch-0001.safetensors");
  CHECK(reports.size() == 2);
  CHECK(reports[1].find("checksum mismatch") != std::string::npos);
  // Pruning counts only checkpoints: the set-aside files are kept for inspection.
  train::write_checkpoint(sample_state(4), run, {.epoch = 2, .iteration = 16}, meta, 1);
  int kept = 0, corrupt = 0;
  for (const auto& e : fs::directory_iterator(run / "checkpoints")) {
    kept += e.path().extension() == ".safetensors";
    corrupt += e.path().extension() == ".corrupt";
  }
  CHECK(kept == 1);
  CHECK(corrupt == 2);
}

TEST_CASE("metrics log: a torn last line is dropped on resume, event rows are cut by step") {
  const test::TempDir dir;
  train::MetricsLog log(dir.path());
  for (int e = 1; e <= 3; ++e) {
    nlohmann::ordered_json row;
    row["epoch"] = e;
    row["iteration"] = 10 * e;
    log.append(row);
    nlohmann::ordered_json ev;
    ev["event"] = "damping_raised";
    ev["epoch"] = e + 1;
    ev["step"] = 10 * e + 3;
    log.append_event(ev);
  }
  { std::ofstream(dir.path() / "metrics.jsonl", std::ios::app) << "{\"epoch\": 4, \"iter"; }  // a cut append
  CHECK_THROWS_AS(log.rows(), DataError);
  CHECK(log.rows(train::MetricsLog::Tail::tolerate_torn).size() == 6);
  log.truncate_after(2, 25);  // a checkpoint inside epoch 3 at iteration 25
  const auto rows = log.rows();
  REQUIRE(rows.size() == 4);  // epochs 1, 2 and the events at steps 13, 23
  CHECK(rows[3]["step"] == 23);
  std::ifstream csv(dir.path() / "metrics.csv");
  int lines = 0;
  for (std::string l; std::getline(csv, l);) ++lines;
  CHECK(lines == 3);  // header + epochs 1, 2
}

TEST_CASE("skip policy: a step whose update overflows leaves parameters and optimizer state bit for bit as before") {
  const Tiny t;
  // Inputs ×1e6 make gradients ≫ 1, so η = DBL_MAX overflows the update. (Adam is not in the list:
  // its normalized step is about η·m̂/√v̂ with |m̂/√v̂| ≲ 1, which no finite η overflows.)
  std::vector<float> big = t.images;
  for (float& v : big) v *= 1e6f;
  const train::HostBatch huge{big, t.labels, 6};
  const double lr_max = std::numeric_limits<double>::max();
  for (OptimizerKind kind : {OptimizerKind::sgd, OptimizerKind::kfac_g}) {
    CAPTURE(to_string(kind));
    OptimConfig oc;
    oc.kind = kind;
    oc.kfac.kl_clip = 0;  // the KL clip would bound the step: here the raw update must overflow
    ReferenceBackend<double> be(t.spec, init_params<double>(t.spec, 3, Init::glorot_uniform), oc, 1);
    be.set_nonfinite_policy(train::NonfinitePolicy::skip);
    for (int k = 0; k < 3; ++k) REQUIRE(be.train_step(t.batch(), 0.01, k).finite);
    const auto before = be.state();
    const auto s = be.train_step(huge, lr_max, 3);
    CHECK_FALSE(s.finite);
    CHECK(s.nonfinite_tensor == "update");
    CHECK_FALSE(s.nonfinite_layer.empty());
    CHECK(same_state(before, be.state()));
    CHECK(be.train_step(t.batch(), 0.01, 4).finite);  // and it goes on from there

    // Negative control: under abort nothing is undone (the run stops; no checkpoint follows).
    ReferenceBackend<double> ab(t.spec, init_params<double>(t.spec, 3, Init::glorot_uniform), oc, 1);
    for (int k = 0; k < 3; ++k) REQUIRE(ab.train_step(t.batch(), 0.01, k).finite);
    const auto ab_before = ab.state();
    CHECK_FALSE(ab.train_step(huge, lr_max, 3).finite);
    CHECK_FALSE(same_state(ab_before, ab.state()));
  }
}

TEST_CASE("K-FAC: a NaN factor is reported with its layer, an indefinite one raises damping and is reported") {
  const Tiny t;
  OptimConfig oc;
  oc.kind = OptimizerKind::kfac_f;
  oc.kfac.t_inv = 1;
  ReferenceBackend<double> be(t.spec, init_params<double>(t.spec, 3, Init::glorot_uniform), oc, 1);
  be.set_nonfinite_policy(train::NonfinitePolicy::skip);
  REQUIRE(be.train_step(t.batch(), 0.01, 0).finite);
  auto st = be.state();
  std::string a_name;
  for (const auto& [name, tensor] : st.tensors)
    if (name.rfind("optim.kfac.A.", 0) == 0 && a_name.empty()) a_name = name;
  REQUIRE(!a_name.empty());
  const auto layer = a_name.substr(std::string("optim.kfac.A.").size());

  auto poisoned = st;
  auto a = poisoned.f64(a_name);
  a[0] = std::nan("");
  poisoned.tensors[a_name] = io::Tensor::from_f64(poisoned.tensors[a_name].shape, a);
  be.load_state(poisoned);
  auto s = be.train_step(t.batch(), 0.01, 1);
  CHECK_FALSE(s.finite);
  CHECK(s.nonfinite_tensor == "kfac_factor");
  CHECK(s.nonfinite_layer == layer);

  // -I: not positive definite for a small damping; the damping is raised, the step is finite.
  auto indefinite = st;
  auto m = indefinite.f64(a_name);
  const auto n = std::int64_t(std::lround(std::sqrt(double(m.size()))));
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t j = 0; j < n; ++j) m[std::size_t(i * n + j)] = i == j ? -1.0 : 0.0;
  indefinite.tensors[a_name] = io::Tensor::from_f64(indefinite.tensors[a_name].shape, m);
  be.load_state(indefinite);
  s = be.train_step(t.batch(), 0.01, 1);
  CHECK(s.finite);
  bool reported = false;
  for (const auto& ev : s.events) {
    MESSAGE(ev.kind << " " << ev.layer << ": " << ev.detail);
    reported |= ev.kind == "damping_raised" && ev.layer == layer;
  }
  CHECK(reported);
  for (const auto& [name, tensor] : be.state().tensors)
    if (tensor.dtype == "F64")
      for (double v : be.state().f64(name)) REQUIRE(std::isfinite(v));
}

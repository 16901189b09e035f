// `wdlab train` / `wdlab eval` end to end on tiny Fashion-MNIST subsets: the run directory, the
// checkpoint format, eval agreeing with the trainer, resume after an interruption reproducing
// the uninterrupted run bit for bit, and config errors.
#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>

#include "common/io/safetensors.hpp"
#include "common/train/metrics_log.hpp"
#include "run_command.hpp"

namespace fs = std::filesystem;
using wdlab::test::run_wdlab;
using wdlab::test::slurp;
using wdlab::test::have_fashion_mnist;

namespace {

const std::string kTiny =
    "--set train_subset=512 --set test_subset=256 --set arch.width=16 --set epochs=2 "
    "--set batch_size=64 --set lr=0.05 --quiet ";

fs::path fresh_dir(const std::string& name) { return wdlab::test::fresh_dir("wdlab_cli", name); }

std::vector<nlohmann::ordered_json> metric_rows(const fs::path& run) {
  return wdlab::train::MetricsLog(run).rows();
}

}  // namespace

TEST_CASE("train writes a complete run directory, eval reproduces the trainer's test accuracy") {
  if (!have_fashion_mnist()) std::exit(77);
  const fs::path run = fresh_dir("a");
  const auto r = run_wdlab("train " + kTiny + "--out " + run.string());
  INFO(r.err);
  REQUIRE(r.rc == 0);
  for (const char* f : {"config.json", "meta.json", "metrics.jsonl", "metrics.csv", "DONE", "checkpoints/latest"})
    CHECK(fs::exists(run / f));
  const auto rows = metric_rows(run);
  REQUIRE(rows.size() == 3);
  CHECK(rows[0]["epoch"] == 0);  // the initial state, before the first step
  CHECK(rows[0]["iteration"] == 0);
  CHECK(rows[2]["epoch"] == 2);
  CHECK(rows[2]["iteration"] == 16);  // 512/64 steps per epoch
  CHECK(rows[2].contains("norm.fc0.weight"));
  CHECK(rows[0]["norm.fc0.weight"] != rows[1]["norm.fc0.weight"]);
  std::ifstream csv(run / "metrics.csv");
  int lines = 0;
  for (std::string l; std::getline(csv, l);) ++lines;
  CHECK(lines == 4);  // header + 3 rows

  const auto ckpt = wdlab::io::load(run / "checkpoints" / "epoch-0002.safetensors");
  CHECK(ckpt.at("fc0.weight").shape == std::vector<std::int64_t>{16, 784});
  CHECK(ckpt.at("fc2.bias").shape == std::vector<std::int64_t>{10});
  int optim_tensors = 0;
  for (const auto& [name, t] : ckpt.tensors) optim_tensors += name.rfind("optim.", 0) == 0;
  CHECK(optim_tensors >= 6);  // a momentum buffer per trainable tensor

  const auto e = run_wdlab("eval --format json --checkpoint " + (run / "checkpoints" / "epoch-0002.safetensors").string());
  INFO(e.err);
  REQUIRE(e.rc == 0);
  const auto j = nlohmann::json::parse(e.out);
  CHECK(j["examples"] == 256);
  CHECK(j["accuracy"].get<double>() == doctest::Approx(rows[2]["test_acc"].get<double>()).epsilon(1e-12));
  CHECK(j["loss"].get<double>() == doctest::Approx(rows[2]["test_loss"].get<double>()).epsilon(1e-9));
  fs::remove_all(run);
}

TEST_CASE("optimizer=lion trains and checkpoints its momentum as optim.lion.exp_avg.<param> in the parameter's shape") {
  if (!have_fashion_mnist()) std::exit(77);
  const fs::path run = fresh_dir("lion");
  const auto r = run_wdlab("train " + kTiny + "--set optimizer=lion --set lr=0.001 --set regularization=wd "
                           "--set weight_decay=0.1 --set lion.beta2=0.98 --out " + run.string());
  INFO(r.err);
  REQUIRE(r.rc == 0);
  std::ifstream in(run / "config.json");
  const auto cfg = nlohmann::json::parse(in);
  CHECK(cfg["optimizer"] == "lion");
  CHECK(cfg["lion"]["beta2"] == 0.98);
  const auto rows = metric_rows(run);
  REQUIRE(rows.size() == 3);
  CHECK(rows[2]["test_loss"].get<double>() < rows[0]["test_loss"].get<double>());  // it learns
  const auto ckpt = wdlab::io::load(run / "checkpoints" / "epoch-0002.safetensors");
  int lion_tensors = 0, other = 0;
  for (const auto& [name, t] : ckpt.tensors) {
    if (name.rfind("optim.lion.exp_avg.", 0) == 0) {
      ++lion_tensors;
      CHECK(t.shape == ckpt.at(name.substr(std::string("optim.lion.exp_avg.").size())).shape);
    } else {
      other += name.rfind("optim.", 0) == 0;
    }
  }
  CHECK(lion_tensors == 6);  // fc0..fc2, weight and bias
  CHECK(other == 0);
  // An unknown lion key is an error naming it.
  const auto bad = run_wdlab("train " + kTiny + "--set optimizer=lion --set lion.beta3=0.5 --out " + run.string() + "x");
  CHECK(bad.rc == 2);
  CHECK(bad.err.find("lion.beta3") != std::string::npos);
  fs::remove_all(run);
}

TEST_CASE("resume after an interruption reproduces the uninterrupted run bit for bit") {
  if (!have_fashion_mnist()) std::exit(77);
  const std::string args = kTiny + "--precision double --set optimizer=adam --set lr=0.003 ";
  const fs::path a = fresh_dir("straight"), b = fresh_dir("resumed");
  REQUIRE(run_wdlab("train " + args + "--out " + a.string()).rc == 0);
  REQUIRE(run_wdlab("train " + args + "--out " + b.string()).rc == 0);
  // Interrupt b after epoch 1: its state is what a kill after that checkpoint leaves.
  fs::remove(b / "DONE");
  fs::remove(b / "checkpoints" / "epoch-0002.safetensors");
  std::ofstream(b / "checkpoints" / "latest") << "epoch-0001.safetensors\n";
  const auto before = wdlab::io::load(b / "checkpoints" / "epoch-0001.safetensors");
  const auto r = run_wdlab("train " + args + "--resume --out " + b.string());
  INFO(r.err);
  REQUIRE(r.rc == 0);
  const auto fa = wdlab::io::load(a / "checkpoints" / "epoch-0002.safetensors");
  const auto fb = wdlab::io::load(b / "checkpoints" / "epoch-0002.safetensors");
  REQUIRE(fa.tensors.size() == fb.tensors.size());
  int differ_from_epoch1 = 0;
  for (const auto& [name, t] : fa.tensors) {
    INFO(name);
    CHECK(t.data == fb.at(name).data);  // bit for bit
    if (before.tensors.count(name)) differ_from_epoch1 += before.at(name).data != t.data;
  }
  CHECK(differ_from_epoch1 > 0);  // not vacuous: epoch 2 changed the state
  const auto ra = metric_rows(a), rb = metric_rows(b);
  REQUIRE(ra.size() == 3);
  REQUIRE(rb.size() == 3);  // no duplicated row for epoch 1
  for (std::size_t i = 0; i < 3; ++i)
    for (const char* k : {"train_loss", "test_loss", "test_acc", "norm.fc1.weight"}) CHECK(ra[i][k] == rb[i][k]);
  fs::remove_all(a);
  fs::remove_all(b);
}

TEST_CASE("config errors name the key, a finished run is not overwritten, resume refuses a changed config") {
  if (!have_fashion_mnist()) std::exit(77);
  const auto unknown = run_wdlab("train --set learning_rat=0.1");
  CHECK(unknown.rc == 2);
  CHECK(unknown.err.find("learning_rat") != std::string::npos);
  const auto bad = run_wdlab("train --set optimizer=lbfgs");
  CHECK(bad.rc == 2);
  CHECK(bad.err.find("optimizer") != std::string::npos);
  const auto range = run_wdlab("train --set lr=-1");
  CHECK(range.rc == 2);
  CHECK(range.err.find("lr") != std::string::npos);
  // TF32 is asked for by name and only where it exists (the cuda backend); bf16 is not offered.
  const auto tf32 = run_wdlab("train --set math=tf32");
  CHECK(tf32.rc == 2);
  CHECK(tf32.err.find("math: tf32 is a math mode of the cuda backend") != std::string::npos);
  const auto bf16 = run_wdlab("train --set math=bf16");
  CHECK(bf16.rc == 2);
  CHECK(bf16.err.find("math") != std::string::npos);
  CHECK(bf16.err.find("fp32") != std::string::npos);  // the allowed values are named
  const auto missing = run_wdlab("train --config /nonexistent/cfg.json");
  CHECK(missing.rc == 3);
  CHECK(missing.err.find("/nonexistent/cfg.json") != std::string::npos);

  const fs::path run = fresh_dir("c");
  REQUIRE(run_wdlab("train " + kTiny + "--set epochs=1 --out " + run.string()).rc == 0);
  // A finished run is never overwritten: the same config is already done (exit 0), another one
  // is refused naming the keys (exit 2).
  const auto again = run_wdlab("train " + kTiny + "--set epochs=1 --out " + run.string());
  CHECK(again.rc == 0);
  CHECK(again.out.find("already complete") != std::string::npos);
  const auto other = run_wdlab("train " + kTiny + "--set epochs=1 --set seed=5 --out " + run.string());
  CHECK(other.rc == 2);
  CHECK(other.err.find("seed") != std::string::npos);
  fs::remove(run / "DONE");
  const auto changed = run_wdlab("train " + kTiny + "--set epochs=1 --set lr=0.5 --resume --out " + run.string());
  CHECK(changed.rc == 2);
  CHECK(changed.err.find("lr") != std::string::npos);
  fs::remove_all(run);
}

TEST_CASE("an official Weight-Decay config is mapped, the mapping printed, and it trains") {
  if (!have_fashion_mnist()) std::exit(77);
  const fs::path dir = fresh_dir("official");
  fs::create_directories(dir);
  std::ofstream(dir / "cfg.json") << R"({"exp_name": "tiny", "optimizer": "kfac", "model_name": "mlp",
    "dataset": "fashion-mnist", "use_kfac": true, "use_fisher": false, "learning_rate": 0.01,
    "momentum": 0.9, "weight_decay_type": "wd", "weight_decay": 0.01, "weight_list": "all",
    "damping": 0.001, "cov_ema_decay": 0.95, "roger_init": true, "epoch": 1, "batch_size": 64,
    "decay_every_itr": 16000, "batch_norm": false, "use_bias": true, "num_workers": 2})";
  const auto r = run_wdlab("train --config " + (dir / "cfg.json").string() +
                           " --set train_subset=256 --set test_subset=128 --set arch.width=8 --out " +
                           (dir / "run").string());
  INFO(r.err);
  REQUIRE(r.rc == 0);
  CHECK(r.err.find("use_fisher false") != std::string::npos);
  CHECK(r.err.find("gn_probe_variance 2") != std::string::npos);
  CHECK(r.err.find("num_workers 2 ignored") != std::string::npos);
  const auto cfg = nlohmann::json::parse(slurp(dir / "run" / "config.json"));
  CHECK(cfg["optimizer"] == "kfac-g");
  CHECK(cfg["regularization"] == "wd");
  CHECK(cfg["kfac"]["factor_init"] == "data_pass");
  CHECK(cfg["schedule"]["kind"] == "step_iterations");
  fs::remove_all(dir);
}

TEST_CASE("SIGTERM inside an epoch: checkpoint, exit 143, resume reproduces the straight run") {
  if (!have_fashion_mnist()) std::exit(77);
  const std::string args = kTiny + "--precision double --set augment=true --set batch_size=32 ";
  const fs::path a = fresh_dir("sig_straight"), b = fresh_dir("sig_stopped");
  REQUIRE(run_wdlab("train " + args + "--out " + a.string()).rc == 0);
  // 512/32 = 16 steps per epoch: step 20 is inside epoch 2.
  const auto stopped = run_wdlab("train " + args + "--out " + b.string(), "WDLAB_FAULT_SIGTERM_AT=20");
  INFO(stopped.err);
  CHECK(stopped.rc == 143);
  CHECK(fs::exists(b / "checkpoints" / "epoch-0002-partial-000000005.safetensors"));
  CHECK_FALSE(fs::exists(b / "DONE"));
  CHECK(metric_rows(b).size() == 2);  // epochs 0 and 1
  const auto r = run_wdlab("train " + args + "--resume --out " + b.string());
  INFO(r.err);
  REQUIRE(r.rc == 0);
  const auto fa = wdlab::io::load(a / "checkpoints" / "epoch-0002.safetensors");
  const auto fb = wdlab::io::load(b / "checkpoints" / "epoch-0002.safetensors");
  for (const auto& [name, t] : fa.tensors) {
    INFO(name);
    CHECK(t.data == fb.at(name).data);
  }
  const auto ra = metric_rows(a), rb = metric_rows(b);
  REQUIRE(rb.size() == 3);
  for (std::size_t i = 0; i < 3; ++i)
    for (const char* k : {"train_loss", "train_acc", "test_loss", "test_acc"}) CHECK(ra[i][k] == rb[i][k]);
  fs::remove_all(a);
  fs::remove_all(b);
}

TEST_CASE("resume from the epoch-0 checkpoint (K-FAC-F, data-pass factors, BN) reproduces the straight run bit for bit") {
  if (!have_fashion_mnist()) std::exit(77);
  const std::string args = kTiny +
                           "--precision double --set optimizer=kfac-f --set lr=0.001 --set arch.batchnorm=true "
                           "--set kfac.factor_init=data_pass --set kfac.t_inv=4 --set checkpoint.keep=5 "
                           "--metrics norms,elr,gap,damping,trace --set metrics.probe=32 ";
  const fs::path a = fresh_dir("e0_straight"), b = fresh_dir("e0_resumed");
  REQUIRE(run_wdlab("train " + args + "--out " + a.string()).rc == 0);
  REQUIRE(run_wdlab("train " + args + "--out " + b.string()).rc == 0);
  // Leave b as a kill right after the epoch-0 checkpoint would.
  fs::remove(b / "DONE");
  fs::remove(b / "checkpoints" / "epoch-0001.safetensors");
  fs::remove(b / "checkpoints" / "epoch-0002.safetensors");
  std::ofstream(b / "checkpoints" / "latest") << "epoch-0000.safetensors\n";
  const auto r = run_wdlab("train " + args + "--resume --out " + b.string());
  INFO(r.err);
  REQUIRE(r.rc == 0);
  CHECK(r.err.find("epoch-0000.safetensors") != std::string::npos);
  const auto fa = wdlab::io::load(a / "checkpoints" / "epoch-0002.safetensors");
  const auto fb = wdlab::io::load(b / "checkpoints" / "epoch-0002.safetensors");
  REQUIRE(fa.tensors.size() == fb.tensors.size());
  for (const auto& [name, t] : fa.tensors) {
    INFO(name);
    CHECK(t.data == fb.at(name).data);  // the factor pass is not run twice
  }
  const auto ra = metric_rows(a), rb = metric_rows(b);
  REQUIRE(ra.size() == 3);
  REQUIRE(rb.size() == 3);  // the epoch-0 row written once
  int compared = 0;
  for (std::size_t i = 0; i < 3; ++i)
    for (const auto& [k, v] : ra[i].items())
      if (k != "epoch_seconds") {
        INFO(i << " " << k);
        CHECK(v == rb[i][k]);
        ++compared;
      }
  CHECK(compared > 30);
  CHECK(ra[0].contains("fisher_trace.fc0.weight"));
  CHECK(ra[0].contains("damping_frac.fc0.weight"));
  fs::remove_all(a);
  fs::remove_all(b);
}

TEST_CASE("a run from before metrics.probe_split resumes with its old meaning (test probe, eval BN)") {
  if (!have_fashion_mnist()) std::exit(77);
  const fs::path a = fresh_dir("legacy");
  const std::string args = kTiny + "--metrics norms,trace --set metrics.probe=16 ";
  REQUIRE(run_wdlab("train " + args + "--set epochs=1 --set metrics.probe_split=test --set metrics.curvature_bn=eval "
                    "--out " + a.string()).rc == 0);
  // What an older wdlab wrote: config.json without the two keys, rows without the probe columns.
  auto cfg = nlohmann::json::parse(std::ifstream(a / "config.json"));
  cfg["metrics"].erase("probe_split");
  cfg["metrics"].erase("curvature_bn");
  std::ofstream(a / "config.json") << cfg.dump(2) << "\n";
  std::string jsonl, csv;
  for (auto row : metric_rows(a)) {
    for (const char* k : {"probe_split", "probe_n", "curvature_bn"}) row.erase(k);
    jsonl += row.dump() + "\n";
    std::string header, line;
    for (const auto& [k, v] : row.items()) {
      if (!header.empty()) {
        header += ',';
        line += ',';
      }
      header += k;
      line += v.is_string() ? v.get<std::string>() : v.dump();
    }
    if (csv.empty()) csv = header + "\n";
    csv += line + "\n";
  }
  std::ofstream(a / "metrics.jsonl") << jsonl;
  std::ofstream(a / "metrics.csv") << csv;
  fs::remove(a / "DONE");
  // Without the keys on the command line the run continues as it was measured.
  const auto r = run_wdlab("train " + args + "--set epochs=2 --reset epochs --out " + a.string());
  INFO(r.err);
  REQUIRE(r.rc == 0);
  // It stays a run of the old kind: written again without the keys (config and checkpoint).
  const auto now = nlohmann::json::parse(std::ifstream(a / "config.json"));
  CHECK_FALSE(now["metrics"].contains("probe_split"));
  CHECK_FALSE(now["metrics"].contains("curvature_bn"));
  const auto m = run_wdlab("measure --run " + a.string() + " --metrics trace --format json");
  REQUIRE(m.rc == 0);
  CHECK(nlohmann::json::parse(m.out)["probe_split"] == "test");
  CHECK(nlohmann::json::parse(m.out)["curvature_bn"] == "eval");
  const auto rows = metric_rows(a);
  REQUIRE(rows.size() == 3);
  CHECK_FALSE(rows[2].contains("probe_split"));  // the run keeps the columns it started with
  CHECK(rows[2].contains("fisher_trace.fc0.weight"));
  // A config that spells out the new defaults (as a sweep's config files do) resumes it too,
  // with its old meaning and a note.
  fs::remove(a / "DONE");
  const auto spelled = run_wdlab("train " + args + "--set epochs=3 --reset epochs --set metrics.probe_split=train "
                                 "--set metrics.curvature_bn=batch --out " + a.string());
  INFO(spelled.err);
  CHECK(spelled.rc == 0);
  CHECK(spelled.err.find("keeps test") != std::string::npos);
  CHECK(spelled.err.find("keeps eval") != std::string::npos);
  const auto rows3 = metric_rows(a);
  REQUIRE(rows3.size() == 4);
  CHECK_FALSE(rows3[3].contains("probe_split"));
  CHECK_FALSE(nlohmann::json::parse(std::ifstream(a / "config.json"))["metrics"].contains("probe_split"));
  // The trace of the last row is the test probe's in eval mode: measure of its checkpoint agrees.
  const auto m3 = run_wdlab("measure --run " + a.string() + " --metrics trace --format json");
  REQUIRE(m3.rc == 0);
  CHECK(nlohmann::json::parse(m3.out)["metrics"]["fisher_trace.fc0.weight"].get<double>() ==
        doctest::Approx(rows3[3]["fisher_trace.fc0.weight"].get<double>()).epsilon(1e-9));
  fs::remove_all(a);
}

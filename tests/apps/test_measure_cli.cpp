// Mechanism metrics end to end: `wdlab train --metrics` logs the groups per epoch, `wdlab measure`
// reproduces a row from the checkpoint, and wn-conv (with wd-fc) follows another run's norms.
#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdlib>
#include <filesystem>

#include "common/train/metrics_log.hpp"
#include "run_command.hpp"

namespace fs = std::filesystem;
using wdlab::test::run_wdlab;

namespace {

const std::string kConv =
    "--set model=convnet --set arch.base_width=4 --set train_subset=256 --set test_subset=128 --set epochs=2 "
    "--set batch_size=64 --set lr=0.05 --quiet ";

fs::path fresh(const std::string& name) { return wdlab::test::fresh_dir("wdlab_measure", name); }

bool near(double a, double b, double rel) { return std::abs(a - b) <= rel * std::max(std::abs(a), std::abs(b)); }

}  // namespace

TEST_CASE("train logs the metric groups, measure reproduces the last row, wd-fc + wn-conv follows another run's norms") {
  if (!wdlab::test::have_fashion_mnist()) std::exit(77);
  const fs::path a = fresh("a"), b = fresh("b"), c = fresh("c");
  const auto ra = run_wdlab("train " + kConv +
                            "--set regularization=wd --set weight_decay=0.5 --metrics all --set metrics.probe=32 "
                            "--set metrics.jac_probes=4 --out " + a.string());
  INFO(ra.err);
  REQUIRE(ra.rc == 0);
  const auto rows = wdlab::train::MetricsLog(a).rows();
  REQUIRE(rows.size() == 3);  // epoch 0 (the initial state), 1, 2
  CHECK(rows[0]["epoch"] == 0);
  CHECK(rows[2]["probe_split"] == "train");  // the defaults
  CHECK(rows[2]["probe_n"] == 32);
  CHECK(rows[2]["curvature_bn"] == "batch");
  for (const char* key : {"norm.features.0.weight", "elr.features.0.weight", "elr_opt.classifier.weight", "jac_norm",
                          "jac_norm_est", "kfac_gn_norm", "gn_norm", "gn_trace.features.0.weight",
                          "fisher_trace.features.0.weight", "gn_trace_exact.classifier.weight", "train_eval_loss",
                          "gen_gap"}) {
    INFO(key);
    CHECK(rows[2].contains(key));
  }
  CHECK_FALSE(rows[2].contains("damping_eff.features.0.weight"));  // K-FAC only
  CHECK(rows[2]["gen_gap"].get<double>() ==
        rows[2]["test_loss"].get<double>() - rows[2]["train_eval_loss"].get<double>());
  CHECK(rows[2]["jac_norm"].get<double>() > 0);

  // measure on the last checkpoint computes the same numbers as the trainer's last row.
  const auto m = run_wdlab("measure --run " + a.string() + " --metrics all --format json");
  INFO(m.err);
  REQUIRE(m.rc == 0);
  const auto j = nlohmann::json::parse(m.out);
  CHECK(j["epoch"] == 2);
  CHECK(j["probe"] == 32);
  for (const char* key : {"jac_norm", "jac_norm_est", "gn_norm", "kfac_gn_norm", "fisher_trace.features.3.weight",
                          "norm.features.7.weight", "test_loss"}) {
    INFO(key << ": measure " << j["metrics"][key] << ", train row " << rows[2][key]);
    CHECK(near(j["metrics"][key].get<double>(), rows[2][key].get<double>(), 1e-6));
  }
  const auto table = run_wdlab("measure --run " + a.string() + " --metrics norms,gn");
  CHECK(table.rc == 0);
  CHECK(table.out.find("kfac_gn_norm") != std::string::npos);

  // wd-fc + wn-conv: the conv weights follow run a's norms epoch by epoch.
  const auto rb = run_wdlab("train " + kConv + "--set regularization=wd --set wd_scope=fc --set weight_decay=0.5 "
                            "--set wn.scope=conv --set wn.norms_from=" + a.string() + " --out " + b.string());
  INFO(rb.err);
  REQUIRE(rb.rc == 0);
  const auto brows = wdlab::train::MetricsLog(b).rows();
  REQUIRE(brows.size() == 3);
  int convs = 0;
  for (int e = 0; e < 3; ++e)  // epoch 0: the same initialization (same seed) before any transfer
    for (const auto& [key, v] : brows[e].items())
      if (key.rfind("norm.features.", 0) == 0) {
        ++convs;
        INFO(key << " epoch " << e << ": " << v << " vs source " << rows[e][key]);
        CHECK(near(v.get<double>(), rows[e][key].get<double>(), 1e-5));
      }
  CHECK(convs == 12);  // four conv layers, epochs 0, 1, 2

  // The dense head is not followed by BN: wn scope all is refused, naming it.
  const auto rc = run_wdlab("train " + kConv + "--set wn.scope=all --set wn.norms_from=" + a.string() + " --out " +
                            c.string());
  CHECK(rc.rc == 2);
  CHECK(rc.err.find("classifier.weight") != std::string::npos);
  const auto bad = run_wdlab("train " + kConv + "--metrics norms,bogus --out " + c.string());
  CHECK(bad.rc == 2);
  CHECK(bad.err.find("bogus") != std::string::npos);
  for (const auto& d : {a, b, c}) fs::remove_all(d);
}

TEST_CASE("the epoch-0 row equals wdlab measure of the epoch-0 checkpoint (K-FAC-F, BN MLP, train probe)") {
  if (!wdlab::test::have_fashion_mnist()) std::exit(77);
  const fs::path a = fresh("epoch0");
  const std::string groups = "norms,elr,damping,gn,trace,jacobian";
  const auto r = run_wdlab("train --set model=mlp --set arch.depth=1 --set arch.width=16 --set arch.batchnorm=true "
                           "--set arch.bias=false --set optimizer=kfac-f --set lr=0.001 --set kfac.factor_init=data_pass "
                           "--set train_subset=256 --set test_subset=128 --set epochs=1 --set batch_size=64 "
                           "--set metrics.probe=32 --metrics " + groups + " --quiet --out " + a.string());
  INFO(r.err);
  REQUIRE(r.rc == 0);
  const auto rows = wdlab::train::MetricsLog(a).rows();
  REQUIRE(rows.size() == 2);
  const auto& row0 = rows[0];
  CHECK(row0["epoch"] == 0);
  CHECK(row0["iteration"] == 0);
  CHECK(row0["probe_split"] == "train");
  CHECK(row0["probe_n"] == 32);
  const fs::path ckpt = a / "checkpoints" / "epoch-0000.safetensors";
  REQUIRE(fs::exists(ckpt));
  const auto m = run_wdlab("measure --run " + a.string() + " --checkpoint " + ckpt.string() + " --metrics " + groups +
                           " --format json");
  INFO(m.err);
  REQUIRE(m.rc == 0);
  const auto j = nlohmann::json::parse(m.out);
  CHECK(j["epoch"] == 0);
  CHECK(j["probe_split"] == "train");
  CHECK(j["curvature_bn"] == "batch");
  int compared = 0;
  for (const auto& [key, v] : j["metrics"].items()) {
    INFO(key << ": measure " << v << ", epoch-0 row " << row0.value(key, nlohmann::ordered_json()));
    REQUIRE(row0.contains(key));
    CHECK(v.get<double>() == row0[key].get<double>());  // same state, same probe, same signs: bit for bit
    ++compared;
  }
  CHECK(compared >= 12);
  CHECK(j["metrics"].contains("damping_frac.fc0.weight"));  // the data-pass factors are in the checkpoint
  CHECK(j["metrics"].contains("fisher_trace.fc0.weight"));
  // The other split and the other BN mode are other numbers (each enum value reaches the backend).
  for (const char* other : {"--probe-split test", "--curvature-bn eval"}) {
    const auto o = run_wdlab("measure --run " + a.string() + " --checkpoint " + ckpt.string() +
                             " --metrics trace --format json " + other);
    INFO(other << ": " << o.err);
    REQUIRE(o.rc == 0);
    const auto jo = nlohmann::json::parse(o.out);
    const double x = jo["metrics"]["fisher_trace.fc0.weight"].get<double>();
    const double y = row0["fisher_trace.fc0.weight"].get<double>();
    CHECK(std::isfinite(x));
    CHECK_FALSE(near(x, y, 1e-3));
  }
  const auto bad = run_wdlab("measure --run " + a.string() + " --probe-split validation");
  CHECK(bad.rc == 2);
  CHECK(bad.err.find("--probe-split") != std::string::npos);
  fs::remove_all(a);
}

TEST_CASE("group rotation: train logs it per epoch, measure takes one step from SGD and K-FAC-F checkpoints and restores") {
  if (!wdlab::test::have_fashion_mnist()) std::exit(77);
  const std::string tiny = "--set model=mlp --set arch.depth=1 --set arch.width=16 --set arch.batchnorm=true "
                           "--set arch.bias=false --set train_subset=256 --set test_subset=64 --set epochs=1 "
                           "--set batch_size=64 --set metrics.probe=32 --metrics norms,rotation --quiet ";
  const fs::path sgd = fresh("rot_sgd"), kfac = fresh("rot_kfac");
  // SGD, momentum 0.9, decoupled WD 0.01, lr 0.05 (constant).
  const auto rs = run_wdlab("train " + tiny + "--set optimizer=sgd --set momentum=0.9 --set lr=0.05 "
                            "--set regularization=wd --set weight_decay=0.01 --out " + sgd.string());
  INFO(rs.err);
  REQUIRE(rs.rc == 0);
  const auto rows = wdlab::train::MetricsLog(sgd).rows();
  REQUIRE(rows.size() == 2);
  CHECK(rows[0]["rot.fc0.weight"].is_null());  // epoch 0: no step yet
  CHECK(rows[0]["grad_ratio.fc0.weight"].is_null());
  const double rot1 = rows[1]["rot.fc0.weight"].get<double>();
  CHECK(rot1 > 0);
  CHECK(rot1 < 1);
  CHECK(rows[1]["grad_ratio.fc0.weight"].get<double>() > 0);
  // √(2ηλ(1−α)/(1+α)) with η the row's scheduled lr, λ = 0.01, α = 0.9 (at η = 0.05:
  // 0.007254762501100117, Python).
  const double eta = rows[1]["lr"].get<double>();
  CHECK(rows[1]["rot_pred.fc0.weight"].get<double>() ==
        doctest::Approx(std::sqrt(2 * eta * 0.01 * 0.1 / 1.9)).epsilon(1e-12));
  CHECK(rows[1]["rot_pred.fc1.weight"].is_null());  // the head is not followed by BN

  // measure: one step from the checkpoint on the probe batch; the checkpoint is not changed and
  // a second measure gives the same numbers (the state was restored, not advanced).
  const fs::path ckpt = sgd / "checkpoints" / "epoch-0001.safetensors";
  REQUIRE(fs::exists(ckpt));
  const auto bytes = fs::file_size(ckpt);
  const auto mtime = fs::last_write_time(ckpt);
  const auto m1 = run_wdlab("measure --run " + sgd.string() + " --metrics rotation,norms --format json");
  const auto m2 = run_wdlab("measure --run " + sgd.string() + " --metrics rotation,norms --format json");
  INFO(m1.err);
  REQUIRE(m1.rc == 0);
  REQUIRE(m2.rc == 0);
  const auto j1 = nlohmann::json::parse(m1.out), j2 = nlohmann::json::parse(m2.out);
  CHECK(j1["metrics"] == j2["metrics"]);
  CHECK(fs::file_size(ckpt) == bytes);
  CHECK(fs::last_write_time(ckpt) == mtime);
  CHECK(j1["metrics"]["norm.fc0.weight"].get<double>() == rows[1]["norm.fc0.weight"].get<double>());
  const double measured = j1["metrics"]["rot.fc0.weight"].get<double>();
  CHECK(measured > 0);
  CHECK(measured < 1);
  CHECK(j1["metrics"]["rot_pred.fc0.weight"].get<double>() == rows[1]["rot_pred.fc0.weight"].get<double>());

  // K-FAC-F: the angle is measured, no equilibrium prediction applies (null).
  const auto rk = run_wdlab("train " + tiny + "--set optimizer=kfac-f --set lr=0.001 --set regularization=wd "
                            "--set weight_decay=0.01 --out " + kfac.string());
  INFO(rk.err);
  REQUIRE(rk.rc == 0);
  const auto mk = run_wdlab("measure --run " + kfac.string() + " --metrics rotation --format json");
  INFO(mk.err);
  REQUIRE(mk.rc == 0);
  const auto jk = nlohmann::json::parse(mk.out);
  CHECK(jk["metrics"]["rot.fc0.weight"].get<double>() > 0);
  CHECK(jk["metrics"]["grad_ratio.fc0.weight"].get<double>() > 0);
  CHECK(jk["metrics"]["rot_pred.fc0.weight"].is_null());
  CHECK(jk["metrics"]["elr_pred.fc0.weight"].is_null());
  const auto table = run_wdlab("measure --run " + kfac.string() + " --metrics rotation");
  CHECK(table.rc == 0);
  CHECK(table.out.find("rot.fc0.weight") != std::string::npos);
  CHECK(table.out.find("null") != std::string::npos);  // rot_pred under K-FAC, printed as in JSON
  CHECK(table.out.find("nan") == std::string::npos);
  for (const auto& d : {sgd, kfac}) fs::remove_all(d);
}

// The config field table (apps/config_fields.*): every field parses, prints and round-trips, is
// listed by `wdlab train --help`, and defaults to the default-constructed struct's value; unknown
// keys and bad values are errors naming the key path.
#include <iostream>
#include <map>
#include <set>
#include <sstream>
#include <string>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "apps/command.hpp"
#include "apps/config_fields.hpp"
#include "apps/experiment_config.hpp"
#include "common/errors.hpp"

using namespace wdlab;
using wdlab::app::config_fields;
using Json = nlohmann::json;

namespace {

/// {"kfac": {"damping": v}} for key "kfac.damping".
void put(Json& j, const std::string& key, const Json& v) {
  const auto dot = key.find('.');
  if (dot == std::string::npos)
    j[key] = v;
  else
    j[key.substr(0, dot)][key.substr(dot + 1)] = v;
}

Json at(const Json& j, const std::string& key) {
  const auto dot = key.find('.');
  if (dot == std::string::npos) return j.contains(key) ? j[key] : Json();
  const auto& o = j[key.substr(0, dot)];
  return o.contains(key.substr(dot + 1)) ? o[key.substr(dot + 1)] : Json();
}

struct Example {
  Json value;      // differs from the default
  Json companion;  // other keys the value needs to validate
};

/// A non-default value for every key, written here by hand (not derived from the table).
std::map<std::string, Example> examples() {
  return {
      {"name", {"my-run", {}}},
      {"dataset", {"cifar10", {}}},
      {"data_dir", {"/data/x", {}}},
      {"validation", {5000, {}}},
      {"train_subset", {100, {}}},
      {"test_subset", {50, {}}},
      {"augment", {true, {}}},
      {"model", {"convnet", {}}},
      {"arch.depth", {3, {}}},
      {"arch.width", {64, {}}},
      {"arch.activation", {"linear", {}}},
      {"arch.bias", {false, {}}},
      {"arch.batchnorm", {true, {}}},
      {"arch.bn_affine", {true, {}}},
      {"arch.width_mult", {0.5, {}}},
      {"arch.widen", {4, {}}},
      {"arch.base_width", {16, {}}},
      {"arch.init", {"he_normal", {}}},
      {"optimizer", {"kfac-g", {}}},
      {"lr", {0.05, {}}},
      {"momentum", {0.5, {}}},
      {"nesterov", {true, {}}},
      {"regularization", {"wd", {}}},
      {"weight_decay", {5e-4, {}}},
      {"wd_scope", {"conv", {}}},
      {"wd_params", {Json::array({"fc1.weight"}), {{"wd_scope", "list"}}}},
      {"decay_biases", {false, {}}},
      {"decay_bn", {false, {}}},
      {"adam.beta1", {0.8, {}}},
      {"adam.beta2", {0.99, {}}},
      {"adam.eps", {1e-6, {}}},
      {"lion.beta1", {0.8, {}}},
      {"lion.beta2", {0.95, {}}},
      {"kfac.damping", {0.01, {}}},
      {"kfac.t_cov", {5, {}}},
      {"kfac.t_inv", {50, {}}},
      {"kfac.cov_ema_decay", {0.9, {}}},
      {"kfac.kl_clip", {0.001, {}}},
      {"kfac.inverse", {"eig", {}}},
      {"kfac.factor_init", {"data_pass", {}}},
      {"kfac.gn_probe_variance", {2.0, {}}},
      {"kfac.max_damping_raises", {3, {}}},
      {"schedule.kind", {"step_epochs", {}}},
      {"schedule.gamma", {0.2, {}}},
      {"schedule.every_epochs", {40, {}}},
      {"schedule.every_iterations", {1000, {}}},
      {"schedule.warmup_iterations", {100, {}}},
      {"epochs", {3, {}}},
      {"batch_size", {64, {}}},
      {"eval_batch_size", {500, {}}},
      {"seed", {std::uint64_t(7), {}}},  // JSON text "7" reads unsigned; a signed 7 is refused
      {"backend", {"cuda", {}}},
      {"precision", {"double", {}}},
      {"math", {"tf32", {{"backend", "cuda"}}}},
      {"checkpoint.every", {2, {}}},
      {"checkpoint.keep", {3, {}}},
      {"on_nonfinite", {"skip", {}}},
      {"divergence_factor", {0.0, {}}},
      {"metrics.groups", {"norms,jacobian", {}}},
      {"metrics.probe", {128, {}}},
      {"metrics.jac_probes", {8, {}}},
      {"metrics.probe_distribution", {"gaussian", {}}},
      {"metrics.probe_split", {"test", {}}},
      {"metrics.curvature_bn", {"eval", {}}},
      {"wn.scope", {"conv", {{"wn", {{"norms_from", "runs/a"}}}}}},
      {"wn.norms_from", {"runs/a", {}}},
  };
}

/// The resolved default config as release 1d1a02e printed it (`wdlab train --dry-run`), keys in order.
constexpr const char* kDefaultConfig = R"({
  "name": "fashion-mnist-mlp-sgd-none",
  "dataset": "fashion-mnist",
  "data_dir": "",
  "validation": 0,
  "train_subset": 0,
  "test_subset": 0,
  "augment": false,
  "model": "mlp",
  "arch": {
    "depth": 2,
    "width": 1000,
    "activation": "relu",
    "bias": true,
    "batchnorm": false,
    "bn_affine": false,
    "width_mult": 1.0,
    "widen": 1,
    "base_width": 32,
    "init": "glorot_uniform"
  },
  "optimizer": "sgd",
  "lr": 0.1,
  "momentum": 0.9,
  "nesterov": false,
  "regularization": "none",
  "weight_decay": 0.0,
  "wd_scope": "all",
  "wd_params": [],
  "decay_biases": true,
  "decay_bn": true,
  "adam": {
    "beta1": 0.9,
    "beta2": 0.999,
    "eps": 1e-08
  },
  "kfac": {
    "damping": 0.001,
    "t_cov": 10,
    "t_inv": 100,
    "cov_ema_decay": 0.95,
    "kl_clip": 0.0,
    "inverse": "cholesky",
    "factor_init": "identity",
    "gn_probe_variance": 1.0
  },
  "schedule": {
    "kind": "constant",
    "gamma": 0.1,
    "every_epochs": 60,
    "every_iterations": 16000,
    "warmup_iterations": 0
  },
  "epochs": 10,
  "batch_size": 128,
  "eval_batch_size": 1000,
  "seed": 1,
  "backend": "reference",
  "precision": "float",
  "math": "fp32",
  "checkpoint": {
    "every": 1,
    "keep": 2
  },
  "on_nonfinite": "abort",
  "divergence_factor": 10.0,
  "metrics": {
    "groups": "norms,elr,gap",
    "probe": 256,
    "jac_probes": 16,
    "probe_distribution": "rademacher",
    "probe_split": "train",
    "curvature_bn": "batch"
  },
  "wn": {
    "scope": "none",
    "norms_from": ""
  }
})";

std::string usage_error(const Json& j) {
  try {
    app::parse_config(j);
  } catch (const UsageError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("config fields: keys are unique, at most one dot, the fields of one object adjacent") {
  std::set<std::string> keys, objects_closed;
  std::string open;
  for (const auto& f : config_fields()) {
    INFO(f.key);
    CHECK(keys.insert(f.key).second);
    const auto dot = f.key.find('.');
    CHECK((dot == std::string::npos || f.key.find('.', dot + 1) == std::string::npos));
    const std::string obj = dot == std::string::npos ? "" : f.key.substr(0, dot);
    if (obj != open) {
      if (!open.empty()) objects_closed.insert(open);
      CHECK(objects_closed.count(obj) == 0);  // an object reopened further down
      open = obj;
    }
    CHECK(!f.help.empty());
  }
  CHECK(keys.size() >= 64);
}

TEST_CASE("config fields: every key round-trips a non-default value through parse and to_json") {
  const auto ex = examples();
  std::set<std::string> table_keys;
  for (const auto& f : config_fields()) table_keys.insert(f.key);
  std::set<std::string> example_keys;
  for (const auto& [k, e] : ex) example_keys.insert(k);
  CHECK(table_keys == example_keys);  // a new field needs its example here

  const Json defaults = Json(app::parse_config(Json::object()).to_json());
  for (const auto& [key, e] : ex) {
    INFO(key, " = ", e.value.dump());
    Json j = e.companion.is_null() ? Json::object() : e.companion;
    put(j, key, e.value);
    const auto c = app::parse_config(j);
    const Json out = Json(c.to_json());
    CHECK(at(out, key) == e.value);
    CHECK(at(defaults, key) != e.value);  // the example is not the default
    CHECK(Json(app::parse_config(out).to_json()) == out);
  }
}

TEST_CASE("config fields: the default config is the previous release's, key for key and in order") {
  const auto want = nlohmann::ordered_json::parse(kDefaultConfig);
  const auto got = app::parse_config(Json::object()).to_json();
  CHECK(got.dump(2) == want.dump(2));
  // Negative control: a changed default shows.
  auto changed = app::parse_config(Json::parse(R"({"kfac": {"damping": 0.002}})")).to_json();
  CHECK(changed.dump(2) != want.dump(2));
}

TEST_CASE("config fields: each default equals the default-constructed ExperimentConfig's") {
  const app::ExperimentConfig constructed;
  const auto parsed = app::parse_config(Json::object());
  int compared = 0;
  for (const auto& f : config_fields()) {
    INFO(f.key);
    // Computed defaults, said in the table's default_text: the name from the other fields,
    // BN on for every model but mlp (the struct holds the MLP's off).
    if (f.key == "name") {
      CHECK(parsed.name == "fashion-mnist-mlp-sgd-none");
      CHECK(!f.default_text.empty());
      continue;
    }
    CHECK(f.write(parsed) == f.write(constructed));
    ++compared;
  }
  CHECK(compared == int(config_fields().size()) - 1);
  // The members themselves, directly (not through the table's accessors), for the values that
  // were written in several places before the table.
  CHECK(parsed.optim.kfac.damping == constructed.optim.kfac.damping);
  CHECK(parsed.optim.kfac.max_damping_raises == constructed.optim.kfac.max_damping_raises);
  CHECK(parsed.optim.kfac.momentum == constructed.optim.kfac.momentum);
  CHECK(parsed.optim.sgd.momentum == constructed.optim.sgd.momentum);
  CHECK(parsed.schedule.lr == constructed.schedule.lr);
  CHECK(parsed.metrics.probe == constructed.metrics.probe);
  // convnet: BN on unless set off.
  const auto conv = app::parse_config(Json::parse(R"({"model": "convnet"})"));
  CHECK(conv.model.conv.norm == Norm::batchnorm);
  CHECK(conv.model.mlp.norm == Norm::batchnorm);
}

TEST_CASE("config fields: kfac.max_damping_raises is parsed, printed when set, absent at its default") {
  const auto c = app::parse_config(Json::parse(R"({"kfac": {"max_damping_raises": 3}})"));
  CHECK(c.optim.kfac.max_damping_raises == 3);
  CHECK(c.to_json()["kfac"]["max_damping_raises"] == 3);
  // At its default it is not written, so a config.json written before the key existed is what a
  // run at the default resolves to (and resumes).
  const auto d = app::parse_config(Json::object()).to_json();
  CHECK(d["kfac"].contains("max_damping_raises") == false);
  CHECK(app::parse_config(Json::parse(R"({"kfac": {"max_damping_raises": 12}})")).to_json() == d);
  CHECK(usage_error(Json::parse(R"({"kfac": {"max_damping_raises": 31}})")).find("kfac.max_damping_raises") == 0);
  CHECK(usage_error(Json::parse(R"({"kfac": {"max_damping_raises": -1}})")).find("kfac.max_damping_raises") == 0);
}

TEST_CASE("config fields: unknown keys and bad values are errors naming the key path") {
  CHECK(usage_error(Json::parse(R"({"kfac": {"dampnig": 1}})")).find("kfac.dampnig") == 0);
  CHECK(usage_error(Json::parse(R"({"learning_rate": 1, "lr": 0.1})")).find("learning_rate") == 0);
  CHECK(usage_error(Json::parse(R"({"optimizer": "lamb"})")).find("optimizer") == 0);
  CHECK(usage_error(Json::parse(R"({"epochs": "ten"})")).find("epochs") == 0);
  CHECK(usage_error(Json::parse(R"({"lr": -1})")).find("lr") == 0);
  // Every field refuses a JSON object and says which.
  for (const auto& f : config_fields()) {
    Json j = Json::object();
    put(j, f.key, Json::object({{"x", 1}}));
    INFO(f.key);
    CHECK(usage_error(j).find(f.key + ":") == 0);
  }
  // Positive control: the same keys with good values parse.
  CHECK(usage_error(Json::parse(R"({"kfac": {"damping": 1}, "optimizer": "kfac-f", "epochs": 3})")).empty());
}

TEST_CASE("wdlab train --help lists every key of the table with its default") {
  std::ostringstream captured;
  auto* old = std::cout.rdbuf(captured.rdbuf());
  int rc = -1;
  try {
    rc = app::cmd_train({"--help"});
  } catch (...) {
    std::cout.rdbuf(old);
    throw;
  }
  std::cout.rdbuf(old);
  CHECK(rc == 0);
  const std::string help = captured.str();
  const app::ExperimentConfig defaults;
  for (const auto& f : config_fields()) {
    INFO(f.key);
    const auto line = help.find("\n  " + f.key + " ");
    REQUIRE(line != std::string::npos);
    const auto next = help.find('\n', help.find('\n', line + 1) + 1);  // the key's two lines
    const std::string entry = help.substr(line, next - line);
    const std::string def = f.default_text.empty() ? f.write(defaults).dump() : f.default_text;
    CHECK(entry.find("default " + def) != std::string::npos);
  }
  CHECK(help.find("kfac.max_damping_raises") != std::string::npos);
  CHECK(help.find("default 0.001") != std::string::npos);  // kfac.damping, written out here
  CHECK(help.find("CPU reference backend") == std::string::npos);
}

#include "apps/experiment_config.hpp"

#include <optional>

#include <fmt/format.h>

#include "apps/config_fields.hpp"
#include "common/errors.hpp"
#include "common/io/json_config.hpp"

namespace wdlab::app {

namespace {

/// "kfac" for "kfac.damping", "" for a top-level key.
std::string object_of(const std::string& key) {
  const auto dot = key.find('.');
  return dot == std::string::npos ? "" : key.substr(0, dot);
}

}  // namespace

void ExperimentConfig::validate() const {
  optim.validate();
  schedule.validate();
  if (epochs < 1) throw UsageError("epochs", fmt::format("must be >= 1, got {}", epochs));
  if (batch_size < 2) throw UsageError("batch_size", fmt::format("must be >= 2, got {}", batch_size));
  if (data.validation < 0) throw UsageError("validation", "must be >= 0");
  metrics.validate();
  if (wn.scope != "none" && wn.norms_from.empty())
    throw UsageError("wn.norms_from", fmt::format("is required with wn.scope {} (the run whose norms to follow)", wn.scope));
}

ExperimentConfig parse_config(const nlohmann::json& j) {
  io::ConfigReader top(j);
  ExperimentConfig c;  // its member initializers are the defaults
  // The fields of one object are adjacent in the table: its reader is finished (unknown keys
  // rejected) when the table leaves it.
  std::optional<io::ConfigReader> object;
  std::string object_name;
  for (const auto& f : config_fields()) {
    const std::string obj = object_of(f.key);
    if (object && obj != object_name) {
      object->finish();
      object.reset();
    }
    if (obj.empty()) {
      f.read(top, f.key, c);
      continue;
    }
    if (!object) {
      object.emplace(top.child(obj));
      object_name = obj;
    }
    f.read(*object, f.key.substr(obj.size() + 1), c);
  }
  if (object) object->finish();
  top.finish();
  if (c.math == MathMode::tf32 && c.backend != BackendKind::cuda)
    throw UsageError("math", "tf32 is a math mode of the cuda backend; the reference computes in float or double");
  if (c.name.empty())
    c.name = fmt::format("{}-{}-{}-{}", c.data.dataset, c.model.name, config_field("optimizer").write(c).get<std::string>(),
                         config_field("regularization").write(c).get<std::string>());
  c.validate();
  return c;
}

nlohmann::ordered_json ExperimentConfig::to_json() const {
  const ExperimentConfig defaults;
  nlohmann::ordered_json j;
  for (const auto& f : config_fields()) {
    nlohmann::ordered_json v = f.write(*this);
    if (f.record == Record::when_changed && v == f.write(defaults)) continue;
    const std::string obj = object_of(f.key);
    if (obj.empty())
      j[f.key] = std::move(v);
    else
      j[obj][f.key.substr(obj.size() + 1)] = std::move(v);
  }
  return j;
}

bool apply_legacy_metric_keys(nlohmann::json& j) {
  if (!j.is_object() || !j.contains("metrics") || !j["metrics"].is_object()) return false;
  nlohmann::json& m = j["metrics"];
  if (!m.contains("probe") || m.contains("probe_split") || m.contains("curvature_bn")) return false;
  m["probe_split"] = "test";
  m["curvature_bn"] = "eval";
  return true;
}

bool is_official_config(const nlohmann::json& j) {
  return j.is_object() && (j.contains("model_name") || j.contains("use_kfac") || j.contains("learning_rate"));
}

ExperimentConfig map_official_config(const nlohmann::json& j, std::vector<std::string>& mapping) {
  nlohmann::json ours = nlohmann::json::object();
  auto say = [&](const std::string& s) { mapping.push_back(s); };
  for (const auto& [k, v] : j.items()) {
    const std::string val = v.dump();
    if (k == "exp_name") { ours["name"] = v; say("exp_name → name"); }
    else if (k == "dataset") { ours["dataset"] = v; say(fmt::format("dataset {} → dataset", val)); }
    else if (k == "model_name") { ours["model"] = v.get<std::string>() == "resnet32" ? "resnet32" : v; if (v == "resnet32") { ours["arch"]["widen"] = 4; say("model_name \"resnet32\" → model resnet32, arch.widen 4 (ResNet32×4, MATH.md §10)"); } else say(fmt::format("model_name {} → model", val)); }
    else if (k == "optimizer") { say(fmt::format("optimizer {} → optimizer (with use_fisher)", val)); }
    else if (k == "use_fisher" || k == "use_kfac") { say(fmt::format("{} {} → optimizer kfac-f / kfac-g", k, val)); }
    else if (k == "learning_rate") { ours["lr"] = v; say(fmt::format("learning_rate {} → lr", val)); }
    else if (k == "momentum") { ours["momentum"] = v; say(fmt::format("momentum {} → momentum", val)); }
    else if (k == "weight_decay") { ours["weight_decay"] = v; say(fmt::format("weight_decay {} → weight_decay", val)); }
    else if (k == "weight_decay_type") { say(fmt::format("weight_decay_type {} → regularization", val)); }
    else if (k == "weight_list") {
      const std::string w = v.get<std::string>();
      ours["wd_scope"] = w == "all" ? "all" : (w == "last" ? "fc" : "conv");
      say(fmt::format("weight_list {} → wd_scope {}", val, ours["wd_scope"].dump()));
    }
    else if (k == "damping") { ours["kfac"]["damping"] = v; say(fmt::format("damping {} → kfac.damping", val)); }
    else if (k == "kl_clip") { ours["kfac"]["kl_clip"] = v; say(fmt::format("kl_clip {} → kfac.kl_clip", val)); }
    else if (k == "cov_ema_decay") { ours["kfac"]["cov_ema_decay"] = v; say(fmt::format("cov_ema_decay {} → kfac.cov_ema_decay", val)); }
    else if (k == "roger_init") { ours["kfac"]["factor_init"] = v.get<bool>() ? "data_pass" : "identity"; say(fmt::format("roger_init {} → kfac.factor_init", val)); }
    else if (k == "decay_every_itr") { ours["schedule"]["kind"] = "step_iterations"; ours["schedule"]["every_iterations"] = v; say(fmt::format("decay_every_itr {} → schedule step_iterations every {}", val, val)); }
    else if (k == "batch_norm") { ours["arch"]["batchnorm"] = v; say(fmt::format("batch_norm {} → arch.batchnorm", val)); }
    else if (k == "use_bias") { ours["arch"]["bias"] = v; say(fmt::format("use_bias {} → arch.bias", val)); }
    else if (k == "data_aug") { ours["augment"] = v; say(fmt::format("data_aug {} → augment", val)); }
    else if (k == "epoch") { ours["epochs"] = v; say(fmt::format("epoch {} → epochs", val)); }
    else if (k == "batch_size") { ours["batch_size"] = v; say(fmt::format("batch_size {} → batch_size", val)); }
    else if (k == "test_batch_size") { ours["eval_batch_size"] = v; say(fmt::format("test_batch_size {} → eval_batch_size", val)); }
    else if (k == "max_to_keep") { ours["checkpoint"]["keep"] = v; say(fmt::format("max_to_keep {} → checkpoint.keep", val)); }
    else if (k == "num_workers") { say(fmt::format("num_workers {} ignored (no loader threads here)", val)); }
    else if (k == "TCov") { ours["kfac"]["t_cov"] = v; say(fmt::format("TCov {} → kfac.t_cov", val)); }
    else if (k == "TInv") { ours["kfac"]["t_inv"] = v; say(fmt::format("TInv {} → kfac.t_inv", val)); }
    else if (k == "comment" || k == "_APPROX" || k == "gn_weight") { say(fmt::format("{} ignored (unused by the official code's trainer)", k)); }
    else throw UsageError(k, "unknown key in an official config");
  }
  const bool kfac = j.value("use_kfac", false) || j.value("optimizer", std::string()) == "kfac";
  std::string opt = j.value("optimizer", std::string("sgd"));
  if (kfac) opt = j.value("use_fisher", false) ? "kfac-f" : "kfac-g";
  ours["optimizer"] = opt;
  const std::string type = j.value("weight_decay_type", std::string("l2"));
  const double wd = j.value("weight_decay", 0.0);
  // The official SGD adds βθ to the gradient before momentum for both types (MATH.md §9.7):
  // that is our l2.
  ours["regularization"] = wd == 0.0 ? "none" : (type == "wd" && opt != "sgd" ? "wd" : "l2");
  if (opt == "kfac-g") {
    ours["kfac"]["gn_probe_variance"] = 2.0;
    say("K-FAC-G: kfac.gn_probe_variance 2 (the official N(z, 0.5 I) surrogate estimates 2G, MATH.md §9.4)");
  }
  if (opt == "sgd" && type == "wd")
    say("SGD weight_decay_type \"wd\" → regularization l2: the official SGD adds the decay before momentum");
  if (!j.contains("decay_every_itr")) { ours["schedule"]["kind"] = "constant"; }
  return parse_config(ours);
}

}  // namespace wdlab::app

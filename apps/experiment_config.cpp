#include "apps/experiment_config.hpp"

#include <fmt/format.h>

#include "common/errors.hpp"
#include "common/io/json_config.hpp"

namespace wdlab::app {

namespace {

std::string init_name(ref::Init i) { return i == ref::Init::glorot_uniform ? "glorot_uniform" : "he_normal"; }

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
  io::ConfigReader r(j);
  ExperimentConfig c;
  c.name = r.get<std::string>("name", "");
  c.data.dataset = r.get_enum("dataset", {"fashion-mnist", "mnist", "cifar10", "cifar100"}, "fashion-mnist");
  c.data.data_dir = r.get<std::string>("data_dir", "");
  c.data.validation = r.get<int>("validation", 0, io::non_negative());
  c.data.train_subset = r.get<int>("train_subset", 0, io::non_negative());
  c.data.test_subset = r.get<int>("test_subset", 0, io::non_negative());
  c.data.augment = r.get<bool>("augment", false) ? train::Augment::on : train::Augment::off;

  c.model.name = r.get<std::string>("model", "mlp");
  {
    auto a = r.child("arch");
    c.model.mlp.depth = a.get<int>("depth", 2, io::non_negative());
    c.model.mlp.width = a.get<int>("width", 1000, io::positive());
    c.model.mlp.activation = a.get_enum("activation", {"relu", "linear"}, "relu") == "relu" ? Activation::relu : Activation::linear;
    const bool bias = a.get<bool>("bias", true);
    const bool bn = a.get<bool>("batchnorm", c.model.name != "mlp");
    c.model.mlp.bias = c.model.conv.bias = bias ? Bias::on : Bias::off;
    c.model.mlp.norm = c.model.conv.norm = bn ? Norm::batchnorm : Norm::none;
    c.model.conv.affine = a.get<bool>("bn_affine", false) ? Affine::on : Affine::off;
    c.model.conv.width_mult = a.get<double>("width_mult", 1.0, io::positive());
    c.model.widen = a.get<int>("widen", 1, io::positive());
    c.model.base_width = a.get<int>("base_width", 32, io::positive());
    c.init = a.get_enum("init", {"glorot_uniform", "he_normal"}, "glorot_uniform") == "glorot_uniform"
                 ? ref::Init::glorot_uniform : ref::Init::he_normal;
    a.finish();
  }

  c.optim.kind = optim::parse_optimizer_kind("optimizer", r.get<std::string>("optimizer", "sgd"));
  c.schedule.lr = r.get<double>("lr", 0.1, io::positive());
  const double momentum = r.get<double>("momentum", 0.9, io::in_range(0, 1));
  c.optim.sgd.momentum = c.optim.kfac.momentum = momentum;
  c.optim.sgd.kind = r.get<bool>("nesterov", false) ? optim::MomentumKind::nesterov : optim::MomentumKind::heavy_ball;
  c.optim.reg.kind = optim::parse_regularization("regularization", r.get_enum("regularization", {"none", "l2", "wd"}, "none"));
  c.optim.reg.weight_decay = r.get<double>("weight_decay", 0.0, io::non_negative());
  c.optim.reg.scope = optim::parse_wd_scope("wd_scope", r.get_enum("wd_scope", {"all", "conv", "fc", "list"}, "all"));
  c.optim.reg.wd_params = r.get<std::vector<std::string>>("wd_params", {});
  c.optim.reg.biases = r.get<bool>("decay_biases", true) ? optim::DecayBiases::yes : optim::DecayBiases::no;
  c.optim.reg.bn = r.get<bool>("decay_bn", true) ? optim::DecayBn::yes : optim::DecayBn::no;
  {
    auto a = r.child("adam");
    c.optim.adam.beta1 = a.get<double>("beta1", 0.9, io::in_range(0, 1));
    c.optim.adam.beta2 = a.get<double>("beta2", 0.999, io::in_range(0, 1));
    c.optim.adam.eps = a.get<double>("eps", 1e-8, io::positive());
    a.finish();
  }
  {
    auto l = r.child("lion");
    c.optim.lion.beta1 = l.get<double>("beta1", 0.9, io::in_range(0, 1));
    c.optim.lion.beta2 = l.get<double>("beta2", 0.99, io::in_range(0, 1));
    l.finish();
  }
  {
    auto k = r.child("kfac");
    c.optim.kfac.damping = k.get<double>("damping", 1e-3, io::positive());
    c.optim.kfac.t_cov = k.get<int>("t_cov", 10, io::positive());
    c.optim.kfac.t_inv = k.get<int>("t_inv", 100, io::positive());
    c.optim.kfac.cov_ema_decay = k.get<double>("cov_ema_decay", 0.95, io::in_range(0, 1));
    c.optim.kfac.kl_clip = k.get<double>("kl_clip", 0.0, io::non_negative());
    c.optim.kfac.inverse = optim::parse_inverse_method("kfac.inverse", k.get_enum("inverse", {"cholesky", "eig"}, "cholesky"));
    c.optim.kfac.factor_init = optim::parse_factor_init("kfac.factor_init", k.get_enum("factor_init", {"identity", "data_pass"}, "identity"));
    c.optim.kfac.gn_probe_variance = k.get<double>("gn_probe_variance", 1.0, io::positive());
    k.finish();
  }
  {
    auto s = r.child("schedule");
    c.schedule.kind = optim::parse_schedule_kind("schedule.kind", s.get_enum("kind", {"constant", "step_epochs", "step_iterations"}, "constant"));
    c.schedule.gamma = s.get<double>("gamma", 0.1, io::positive());
    c.schedule.every_epochs = s.get<int>("every_epochs", 60, io::positive());
    c.schedule.every_iterations = s.get<std::int64_t>("every_iterations", 16000, io::positive());
    c.schedule.warmup_iterations = s.get<std::int64_t>("warmup_iterations", 0, io::non_negative());
    s.finish();
  }
  {
    auto m = r.child("metrics");
    c.metrics.groups = train::parse_metric_groups("metrics.groups", m.get<std::string>("groups", "default"));
    c.metrics.probe = m.get<int>("probe", 256, io::positive());
    c.metrics.jac_probes = m.get<int>("jac_probes", 16, io::positive());
    c.metrics.probe_distribution = train::parse_probe_distribution(
        "metrics.probe_distribution", m.get_enum("probe_distribution", {"rademacher", "gaussian"}, "rademacher"));
    c.metrics.probe_split =
        train::parse_probe_split("metrics.probe_split", m.get_enum("probe_split", {"train", "test"}, "train"));
    c.metrics.curvature_bn =
        train::parse_curvature_bn("metrics.curvature_bn", m.get_enum("curvature_bn", {"eval", "batch"}, "batch"));
    m.finish();
  }
  {
    auto w = r.child("wn");
    c.wn.scope = w.get_enum("scope", {"none", "conv", "fc", "all"}, "none");
    c.wn.norms_from = w.get<std::string>("norms_from", "");
    w.finish();
  }
  c.epochs = r.get<int>("epochs", 10, io::positive());
  c.batch_size = r.get<int>("batch_size", 128, io::at_least(2));
  c.eval_batch_size = r.get<int>("eval_batch_size", 1000, io::positive());
  c.seed = r.get<std::uint64_t>("seed", 1);
  c.backend = r.get_enum("backend", {"reference", "cuda"}, "reference") == "cuda" ? BackendKind::cuda : BackendKind::reference;
  c.precision = r.get_enum("precision", {"float", "double"}, "float") == "double" ? Precision::float64 : Precision::float32;
  c.math = r.get_enum("math", {"fp32", "tf32"}, "fp32") == "tf32" ? MathMode::tf32 : MathMode::fp32;
  if (c.math == MathMode::tf32 && c.backend != BackendKind::cuda)
    throw UsageError("math", "tf32 is a math mode of the cuda backend; the reference computes in float or double");
  {
    auto k = r.child("checkpoint");
    c.checkpoint_every = k.get<int>("every", 1, io::positive());
    c.keep_checkpoints = k.get<int>("keep", 2, io::positive());
    k.finish();
  }
  c.on_nonfinite = r.get_enum("on_nonfinite", {"abort", "skip"}, "abort") == "skip" ? train::NonfinitePolicy::skip
                                                                                   : train::NonfinitePolicy::abort;
  c.divergence_factor = r.get<double>("divergence_factor", 10.0, io::non_negative());
  r.finish();
  if (c.name.empty())
    c.name = fmt::format("{}-{}-{}-{}", c.data.dataset, c.model.name, to_string(c.optim.kind),
                         optim::to_string(c.optim.reg.kind));
  c.validate();
  return c;
}

nlohmann::ordered_json ExperimentConfig::to_json() const {
  nlohmann::ordered_json j;
  j["name"] = name;
  j["dataset"] = data.dataset;
  j["data_dir"] = data.data_dir;
  j["validation"] = data.validation;
  j["train_subset"] = data.train_subset;
  j["test_subset"] = data.test_subset;
  j["augment"] = data.augment == train::Augment::on;
  j["model"] = model.name;
  j["arch"] = {{"depth", model.mlp.depth},
               {"width", model.mlp.width},
               {"activation", to_string(model.mlp.activation)},
               {"bias", model.mlp.bias == Bias::on},
               {"batchnorm", model.mlp.norm == Norm::batchnorm},
               {"bn_affine", model.conv.affine == Affine::on},
               {"width_mult", model.conv.width_mult},
               {"widen", model.widen},
               {"base_width", model.base_width},
               {"init", init_name(init)}};
  j["optimizer"] = to_string(optim.kind);
  j["lr"] = schedule.lr;
  j["momentum"] = optim.sgd.momentum;
  j["nesterov"] = optim.sgd.kind == optim::MomentumKind::nesterov;
  j["regularization"] = optim::to_string(optim.reg.kind);
  j["weight_decay"] = optim.reg.weight_decay;
  j["wd_scope"] = optim::to_string(optim.reg.scope);
  j["wd_params"] = optim.reg.wd_params;
  j["decay_biases"] = optim.reg.biases == optim::DecayBiases::yes;
  j["decay_bn"] = optim.reg.bn == optim::DecayBn::yes;
  j["adam"] = {{"beta1", optim.adam.beta1}, {"beta2", optim.adam.beta2}, {"eps", optim.adam.eps}};
  // Only a Lion run writes its block: older run directories' configs stay equal to today's.
  if (optim.kind == optim::OptimizerKind::lion) j["lion"] = {{"beta1", optim.lion.beta1}, {"beta2", optim.lion.beta2}};
  j["kfac"] = {{"damping", optim.kfac.damping},
               {"t_cov", optim.kfac.t_cov},
               {"t_inv", optim.kfac.t_inv},
               {"cov_ema_decay", optim.kfac.cov_ema_decay},
               {"kl_clip", optim.kfac.kl_clip},
               {"inverse", optim::to_string(optim.kfac.inverse)},
               {"factor_init", optim::to_string(optim.kfac.factor_init)},
               {"gn_probe_variance", optim.kfac.gn_probe_variance}};
  j["schedule"] = {{"kind", optim::to_string(schedule.kind)},
                   {"gamma", schedule.gamma},
                   {"every_epochs", schedule.every_epochs},
                   {"every_iterations", schedule.every_iterations},
                   {"warmup_iterations", schedule.warmup_iterations}};
  j["epochs"] = epochs;
  j["batch_size"] = batch_size;
  j["eval_batch_size"] = eval_batch_size;
  j["seed"] = seed;
  j["backend"] = backend == BackendKind::cuda ? "cuda" : "reference";
  j["precision"] = precision == Precision::float64 ? "double" : "float";
  j["math"] = to_string(math);
  j["checkpoint"] = {{"every", checkpoint_every}, {"keep", keep_checkpoints}};
  j["on_nonfinite"] = on_nonfinite == train::NonfinitePolicy::skip ? "skip" : "abort";
  j["divergence_factor"] = divergence_factor;
  j["metrics"] = {{"groups", train::to_string(metrics.groups)},
                  {"probe", metrics.probe},
                  {"jac_probes", metrics.jac_probes},
                  {"probe_distribution", train::to_string(metrics.probe_distribution)},
                  {"probe_split", train::to_string(metrics.probe_split)},
                  {"curvature_bn", train::to_string(metrics.curvature_bn)}};
  j["wn"] = {{"scope", wn.scope}, {"norms_from", wn.norms_from}};
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

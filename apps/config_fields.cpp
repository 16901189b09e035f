#include "apps/config_fields.hpp"

#include <cmath>
#include <type_traits>
#include <utility>

#include <fmt/format.h>

#include "common/errors.hpp"

namespace wdlab::app {

namespace {

using Json = nlohmann::ordered_json;

/// The member type an accessor `[](auto& c) -> auto& { return c.x; }` refers to.
template <class Acc>
using member_t = std::remove_cvref_t<std::invoke_result_t<Acc, ExperimentConfig&>>;

std::string describe(const io::Bounds& b) {
  const bool lo_inf = std::isinf(b.lo), hi_inf = std::isinf(b.hi);
  if (lo_inf && hi_inf) return "";
  if (hi_inf) return fmt::format("{} {}", b.lo_open ? ">" : ">=", b.lo);
  if (lo_inf) return fmt::format("{} {}", b.hi_open ? "<" : "<=", b.hi);
  return fmt::format("{}{}, {}{}", b.lo_open ? "(" : "[", b.lo, b.hi, b.hi_open ? ")" : "]");
}

/// A number, string or list of strings, read as its own type within `bounds`.
template <class Acc>
ConfigField value(std::string key, Acc acc, io::Bounds bounds, std::string help, Record record = Record::always) {
  using T = member_t<Acc>;
  ConfigField f{std::move(key), describe(bounds), std::move(help), record, "", nullptr, nullptr};
  f.read = [acc, bounds](io::ConfigReader& r, const std::string& leaf, ExperimentConfig& c) {
    T& m = acc(c);
    m = r.get<T>(leaf, m, bounds);
  };
  f.write = [acc](const ExperimentConfig& c) { return Json(acc(c)); };
  return f;
}

template <class Acc>
ConfigField text(std::string key, Acc acc, std::string help) {
  return value(std::move(key), acc, io::any_value(), std::move(help));
}

/// One of a fixed set of spellings, each naming one value of the member (an enum or a string).
template <class Acc>
ConfigField choice(std::string key, Acc acc, std::vector<std::pair<std::string, member_t<Acc>>> names,
                   std::string help) {
  std::vector<std::string> spellings;
  for (const auto& n : names) spellings.push_back(n.first);
  ConfigField f{std::move(key), fmt::format("{}", fmt::join(spellings, "|")), std::move(help), Record::always, "",
                nullptr, nullptr};
  f.read = [acc, names, spellings](io::ConfigReader& r, const std::string& leaf, ExperimentConfig& c) {
    if (!r.has(leaf)) return;  // the default stays
    const auto v = r.require<std::string>(leaf);
    for (const auto& [name, e] : names)
      if (name == v) {
        acc(c) = e;
        return;
      }
    throw UsageError(r.path(leaf), fmt::format("expected one of {}, got \"{}\"", fmt::join(spellings, ", "), v));
  };
  f.write = [acc, names, k = f.key](const ExperimentConfig& c) {
    for (const auto& [name, e] : names)
      if (e == acc(c)) return Json(name);
    throw InternalError(fmt::format("config field {}: a value without a spelling", k));
  };
  return f;
}

/// A string member restricted to `names`.
template <class Acc>
ConfigField one_of(std::string key, Acc acc, const std::vector<std::string>& names, std::string help) {
  std::vector<std::pair<std::string, std::string>> pairs;
  for (const auto& n : names) pairs.emplace_back(n, n);
  return choice(std::move(key), acc, std::move(pairs), std::move(help));
}

/// A JSON bool for a two-valued enum: true is `on`.
template <class Acc>
ConfigField flag(std::string key, Acc acc, member_t<Acc> on, member_t<Acc> off, std::string help) {
  ConfigField f{std::move(key), "true|false", std::move(help), Record::always, "", nullptr, nullptr};
  f.read = [acc, on, off](io::ConfigReader& r, const std::string& leaf, ExperimentConfig& c) {
    acc(c) = r.get<bool>(leaf, acc(c) == on) ? on : off;
  };
  f.write = [acc, on](const ExperimentConfig& c) { return Json(acc(c) == on); };
  return f;
}

std::vector<ConfigField> make_fields() {
  std::vector<ConfigField> f;
  // --- data ---
  {
    ConfigField name = text("name", [](auto& c) -> auto& { return c.name; },
                            "run name; also the run directory runs/<name>");
    name.default_text = "<dataset>-<model>-<optimizer>-<regularization>";
    f.push_back(std::move(name));
  }
  f.push_back(one_of("dataset", [](auto& c) -> auto& { return c.data.dataset; },
                     {"fashion-mnist", "mnist", "cifar10", "cifar100"}, "the data set"));
  f.push_back(text("data_dir", [](auto& c) -> auto& { return c.data.data_dir; },
                   "its directory (fashion-mnist: Debian's package path when empty)"));
  f.push_back(value("validation", [](auto& c) -> auto& { return c.data.validation; }, io::non_negative(),
                    "training examples held out for validation (the paper: 5000)"));
  f.push_back(value("train_subset", [](auto& c) -> auto& { return c.data.train_subset; }, io::non_negative(),
                    "the first n training examples (0: all)"));
  f.push_back(value("test_subset", [](auto& c) -> auto& { return c.data.test_subset; }, io::non_negative(),
                    "the first n test examples (0: all)"));
  f.push_back(flag("augment", [](auto& c) -> auto& { return c.data.augment; }, train::Augment::on,
                   train::Augment::off, "random crops and flips of the training images"));
  // --- model ---
  f.push_back(text("model", [](auto& c) -> auto& { return c.model.name; },
                   "mlp | convnet | vgg11..19 | resnet<6n+2>"));
  f.push_back(value("arch.depth", [](auto& c) -> auto& { return c.model.mlp.depth; }, io::non_negative(),
                    "mlp: hidden layers"));
  f.push_back(value("arch.width", [](auto& c) -> auto& { return c.model.mlp.width; }, io::positive(),
                    "mlp: hidden units per layer"));
  f.push_back(choice("arch.activation", [](auto& c) -> auto& { return c.model.mlp.activation; },
                     {{"relu", Activation::relu}, {"linear", Activation::linear}}, "mlp: hidden activation"));
  {
    ConfigField bias{"arch.bias", "true|false", "biases of dense and conv layers", Record::always, "", nullptr, nullptr};
    bias.read = [](io::ConfigReader& r, const std::string& leaf, ExperimentConfig& c) {
      c.model.mlp.bias = c.model.conv.bias = r.get<bool>(leaf, c.model.mlp.bias == Bias::on) ? Bias::on : Bias::off;
    };
    bias.write = [](const ExperimentConfig& c) { return Json(c.model.mlp.bias == Bias::on); };
    f.push_back(std::move(bias));
  }
  {
    ConfigField bn{"arch.batchnorm", "true|false", "batch normalization after each dense/conv layer",
                   Record::always, "false for mlp, true otherwise", nullptr, nullptr};
    bn.read = [](io::ConfigReader& r, const std::string& leaf, ExperimentConfig& c) {
      const bool on = r.get<bool>(leaf, c.model.name != "mlp");  // the model is read before
      c.model.mlp.norm = c.model.conv.norm = on ? Norm::batchnorm : Norm::none;
    };
    bn.write = [](const ExperimentConfig& c) { return Json(c.model.mlp.norm == Norm::batchnorm); };
    f.push_back(std::move(bn));
  }
  f.push_back(flag("arch.bn_affine", [](auto& c) -> auto& { return c.model.conv.affine; }, Affine::on, Affine::off,
                   "BN with learned scale and shift"));
  f.push_back(value("arch.width_mult", [](auto& c) -> auto& { return c.model.conv.width_mult; }, io::positive(),
                    "conv nets: channels scaled (rounded, at least 1)"));
  f.push_back(value("arch.widen", [](auto& c) -> auto& { return c.model.widen; }, io::positive(),
                    "resnet: width multiplier (ResNet32x4: 4)"));
  f.push_back(value("arch.base_width", [](auto& c) -> auto& { return c.model.base_width; }, io::positive(),
                    "convnet: channels of the first layer"));
  f.push_back(choice("arch.init", [](auto& c) -> auto& { return c.init; },
                     {{"glorot_uniform", ref::Init::glorot_uniform}, {"he_normal", ref::Init::he_normal}},
                     "weight initialization"));
  // --- optimizer (common/optim/: its kinds and their spellings are listed there once) ---
  {
    std::vector<std::pair<std::string, optim::OptimizerKind>> kinds;
    for (const optim::OptimizerKind k : optim::all_optimizer_kinds) kinds.emplace_back(optim::to_string(k), k);
    f.push_back(choice("optimizer", [](auto& c) -> auto& { return c.optim.kind; }, std::move(kinds), "the optimizer"));
  }
  f.push_back(value("lr", [](auto& c) -> auto& { return c.schedule.lr; }, io::positive(),
                    "learning rate eta_0"));
  {
    ConfigField m{"momentum", describe(io::in_range(0, 1)), "mu, of SGD and of K-FAC (after preconditioning)",
                  Record::always, "", nullptr, nullptr};
    m.read = [](io::ConfigReader& r, const std::string& leaf, ExperimentConfig& c) {
      c.optim.sgd.momentum = c.optim.kfac.momentum = r.get<double>(leaf, c.optim.sgd.momentum, io::in_range(0, 1));
    };
    m.write = [](const ExperimentConfig& c) { return Json(c.optim.sgd.momentum); };
    f.push_back(std::move(m));
  }
  f.push_back(flag("nesterov", [](auto& c) -> auto& { return c.optim.sgd.kind; }, optim::MomentumKind::nesterov,
                   optim::MomentumKind::heavy_ball, "SGD: Nesterov momentum instead of heavy ball"));
  f.push_back(choice("regularization", [](auto& c) -> auto& { return c.optim.reg.kind; },
                     {{"none", optim::Regularization::none}, {"l2", optim::Regularization::l2},
                      {"wd", optim::Regularization::wd}},
                     "l2: beta*theta added to the gradient before preconditioning or moments; "
                     "wd: theta <- theta - lr*beta*theta after the step"));
  f.push_back(value("weight_decay", [](auto& c) -> auto& { return c.optim.reg.weight_decay; }, io::non_negative(),
                    "beta"));
  f.push_back(choice("wd_scope", [](auto& c) -> auto& { return c.optim.reg.scope; },
                     {{"all", optim::WdScope::all}, {"conv", optim::WdScope::conv}, {"fc", optim::WdScope::fc},
                      {"list", optim::WdScope::list}},
                     "the tensors regularized (list: exactly wd_params)"));
  f.push_back(text("wd_params", [](auto& c) -> auto& { return c.optim.reg.wd_params; },
                   "wd_scope list: parameter names"));
  f.push_back(flag("decay_biases", [](auto& c) -> auto& { return c.optim.reg.biases; }, optim::DecayBiases::yes,
                   optim::DecayBiases::no, "regularize biases (scopes all/conv/fc)"));
  f.push_back(flag("decay_bn", [](auto& c) -> auto& { return c.optim.reg.bn; }, optim::DecayBn::yes, optim::DecayBn::no,
                   "regularize BN scale and shift (scopes all/conv/fc)"));
  f.push_back(value("adam.beta1", [](auto& c) -> auto& { return c.optim.adam.beta1; }, io::in_range(0, 1),
                    "first-moment decay"));
  f.push_back(value("adam.beta2", [](auto& c) -> auto& { return c.optim.adam.beta2; }, io::in_range(0, 1),
                    "second-moment decay"));
  f.push_back(value("adam.eps", [](auto& c) -> auto& { return c.optim.adam.eps; }, io::positive(),
                    "added to the root of the second moment"));
  f.push_back(value("lion.beta1", [](auto& c) -> auto& { return c.optim.lion.beta1; }, io::in_range(0, 1),
                    "Lion: interpolation of momentum and gradient inside the sign", Record::when_changed));
  f.push_back(value("lion.beta2", [](auto& c) -> auto& { return c.optim.lion.beta2; }, io::in_range(0, 1),
                    "Lion: momentum decay", Record::when_changed));
  f.push_back(value("kfac.damping", [](auto& c) -> auto& { return c.optim.kfac.damping; }, io::positive(),
                    "lambda, split between the two factors by pi"));
  f.push_back(value("kfac.t_cov", [](auto& c) -> auto& { return c.optim.kfac.t_cov; }, io::positive(),
                    "factor statistics updated every t_cov steps"));
  f.push_back(value("kfac.t_inv", [](auto& c) -> auto& { return c.optim.kfac.t_inv; }, io::positive(),
                    "damped inverses recomputed every t_inv steps"));
  f.push_back(value("kfac.cov_ema_decay", [](auto& c) -> auto& { return c.optim.kfac.cov_ema_decay; },
                    io::in_range(0, 1), "epsilon in A <- epsilon A + (1 - epsilon) A_batch"));
  f.push_back(value("kfac.kl_clip", [](auto& c) -> auto& { return c.optim.kfac.kl_clip; }, io::non_negative(),
                    "kappa, the KL clip of the update (0: off)"));
  f.push_back(choice("kfac.inverse", [](auto& c) -> auto& { return c.optim.kfac.inverse; },
                     {{"cholesky", optim::InverseMethod::cholesky}, {"eig", optim::InverseMethod::eig}},
                     "how the damped factors are inverted"));
  f.push_back(choice("kfac.factor_init", [](auto& c) -> auto& { return c.optim.kfac.factor_init; },
                     {{"identity", optim::FactorInit::identity}, {"data_pass", optim::FactorInit::data_pass}},
                     "factors start at I, or from one pass over the training set"));
  f.push_back(value("kfac.gn_probe_variance", [](auto& c) -> auto& { return c.optim.kfac.gn_probe_variance; },
                    io::positive(), "K-FAC-G probe covariance scale (the official code: 2)"));
  f.push_back(value("kfac.max_damping_raises", [](auto& c) -> auto& { return c.optim.kfac.max_damping_raises; },
                    io::in_range(0, 30),
                    "x10 damping raises of a factor not positive definite, before a numeric error",
                    Record::when_changed));
  f.push_back(choice("schedule.kind", [](auto& c) -> auto& { return c.schedule.kind; },
                     {{"constant", optim::ScheduleKind::constant}, {"step_epochs", optim::ScheduleKind::step_epochs},
                      {"step_iterations", optim::ScheduleKind::step_iterations}},
                     "learning-rate schedule"));
  f.push_back(value("schedule.gamma", [](auto& c) -> auto& { return c.schedule.gamma; }, io::positive(),
                    "decay factor per stage"));
  f.push_back(value("schedule.every_epochs", [](auto& c) -> auto& { return c.schedule.every_epochs; },
                    io::positive(), "step_epochs: stage length"));
  f.push_back(value("schedule.every_iterations", [](auto& c) -> auto& { return c.schedule.every_iterations; },
                    io::positive(), "step_iterations: stage length"));
  f.push_back(value("schedule.warmup_iterations", [](auto& c) -> auto& { return c.schedule.warmup_iterations; },
                    io::non_negative(), "linear warm-up steps (0: off)"));
  // --- the loop ---
  f.push_back(value("epochs", [](auto& c) -> auto& { return c.epochs; }, io::positive(), "training epochs"));
  f.push_back(value("batch_size", [](auto& c) -> auto& { return c.batch_size; }, io::at_least(2),
                    "training batch size"));
  f.push_back(value("eval_batch_size", [](auto& c) -> auto& { return c.eval_batch_size; }, io::positive(),
                    "evaluation batch size"));
  f.push_back(value("seed", [](auto& c) -> auto& { return c.seed; }, io::any_value(),
                    "initialization, data order, probes"));
  f.push_back(choice("backend", [](auto& c) -> auto& { return c.backend; },
                     {{"reference", BackendKind::reference}, {"cuda", BackendKind::cuda}},
                     "reference (CPU, Eigen) | cuda (a GPU)"));
  f.push_back(choice("precision", [](auto& c) -> auto& { return c.precision; },
                     {{"float", Precision::float32}, {"double", Precision::float64}}, "arithmetic"));
  f.push_back(choice("math", [](auto& c) -> auto& { return c.math; },
                     {{"fp32", MathMode::fp32}, {"tf32", MathMode::tf32}},
                     "cuda only: tf32 for TF32 tensor-core convolutions and GEMMs"));
  f.push_back(value("checkpoint.every", [](auto& c) -> auto& { return c.checkpoint_every; }, io::positive(),
                    "a checkpoint every n epochs"));
  f.push_back(value("checkpoint.keep", [](auto& c) -> auto& { return c.keep_checkpoints; }, io::positive(),
                    "checkpoints kept"));
  f.push_back(choice("on_nonfinite", [](auto& c) -> auto& { return c.on_nonfinite; },
                     {{"abort", train::NonfinitePolicy::abort}, {"skip", train::NonfinitePolicy::skip}},
                     "a non-finite step: abort (exit 4) | skip it (undone, counted)"));
  f.push_back(value("divergence_factor", [](auto& c) -> auto& { return c.divergence_factor; }, io::non_negative(),
                    "stop when the loss exceeds this times the initial one (0: off)"));
  // --- metrics ---
  {
    ConfigField g{"metrics.groups", "comma-separated groups, all, default, none", "metric groups logged per epoch",
                  Record::always, "", nullptr, nullptr};
    g.read = [](io::ConfigReader& r, const std::string& leaf, ExperimentConfig& c) {
      if (r.has(leaf)) c.metrics.groups = train::parse_metric_groups(r.path(leaf), r.require<std::string>(leaf));
    };
    g.write = [](const ExperimentConfig& c) { return Json(train::to_string(c.metrics.groups)); };
    f.push_back(std::move(g));
  }
  f.push_back(value("metrics.probe", [](auto& c) -> auto& { return c.metrics.probe; }, io::positive(),
                    "curvature groups: the first n examples of probe_split"));
  f.push_back(value("metrics.jac_probes", [](auto& c) -> auto& { return c.metrics.jac_probes; }, io::positive(),
                    "random projections of the Jacobian-norm estimate"));
  f.push_back(choice("metrics.probe_distribution", [](auto& c) -> auto& { return c.metrics.probe_distribution; },
                     {{"rademacher", train::ProbeDistribution::rademacher},
                      {"gaussian", train::ProbeDistribution::gaussian}},
                     "distribution of the projections"));
  f.push_back(choice("metrics.probe_split", [](auto& c) -> auto& { return c.metrics.probe_split; },
                     {{"train", train::ProbeSplit::train}, {"test", train::ProbeSplit::test}},
                     "the split the probe set is taken from"));
  f.push_back(choice("metrics.curvature_bn", [](auto& c) -> auto& { return c.metrics.curvature_bn; },
                     {{"eval", train::CurvatureBn::eval}, {"batch", train::CurvatureBn::batch}},
                     "BN in the curvature groups: running statistics | the probe batch's"));
  f.push_back(one_of("wn.scope", [](auto& c) -> auto& { return c.wn.scope; }, {"none", "conv", "fc", "all"},
                     "weight tensors rescaled each epoch to another run's norms"));
  f.push_back(text("wn.norms_from", [](auto& c) -> auto& { return c.wn.norms_from; },
                   "the run directory whose metrics.jsonl gives the norms"));
  return f;
}

}  // namespace

const std::vector<ConfigField>& config_fields() {
  static const std::vector<ConfigField> fields = make_fields();
  return fields;
}

const ConfigField& config_field(std::string_view key) {
  for (const auto& f : config_fields())
    if (f.key == key) return f;
  throw InternalError(fmt::format("config_field: no field '{}'", key));
}

std::string config_keys_help() {
  const ExperimentConfig defaults;
  std::string out;
  for (const auto& f : config_fields()) {
    const std::string def = f.default_text.empty() ? f.write(defaults).dump() : f.default_text;
    out += fmt::format("  {:<28} {}\n  {:<28}   {}{}default {}\n", f.key, f.help, "", f.values,
                       f.values.empty() ? "" : "; ", def);
  }
  return out;
}

}  // namespace wdlab::app

#include "common/optim/optim_config.hpp"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "common/errors.hpp"

namespace wdlab::optim {

namespace {

template <class E, std::size_t N>
E parse_enum(const std::string& field, const std::string& s, const E (&values)[N]) {
  std::string known;
  for (E v : values) {
    if (to_string(v) == s) return v;
    known += (known.empty() ? "" : ", ") + to_string(v);
  }
  throw UsageError(field, fmt::format("unknown value '{}' (expected one of {})", s, known));
}

void require(bool ok, const std::string& field, const std::string& problem) {
  if (!ok) throw UsageError(field, problem);
}

bool finite_in(double x, double lo, double hi) { return std::isfinite(x) && x >= lo && x <= hi; }

}  // namespace

std::string to_string(OptimizerKind k) {
  switch (k) {
    case OptimizerKind::sgd: return "sgd";
    case OptimizerKind::adam: return "adam";
    case OptimizerKind::kfac_f: return "kfac-f";
    case OptimizerKind::kfac_g: return "kfac-g";
    case OptimizerKind::lion: return "lion";
  }
  return "?";
}
std::string optimizer_kind_list() {
  std::string s;
  for (OptimizerKind k : all_optimizer_kinds) s += (s.empty() ? "" : ", ") + to_string(k);
  return s;
}
std::string to_string(Regularization r) {
  switch (r) {
    case Regularization::none: return "none";
    case Regularization::l2: return "l2";
    case Regularization::wd: return "wd";
  }
  return "?";
}
std::string to_string(WdScope s) {
  switch (s) {
    case WdScope::all: return "all";
    case WdScope::conv: return "conv";
    case WdScope::fc: return "fc";
    case WdScope::list: return "list";
  }
  return "?";
}
std::string to_string(MomentumKind m) {
  switch (m) {
    case MomentumKind::heavy_ball: return "heavy_ball";
    case MomentumKind::nesterov: return "nesterov";
  }
  return "?";
}
std::string to_string(InverseMethod m) {
  switch (m) {
    case InverseMethod::cholesky: return "cholesky";
    case InverseMethod::eig: return "eig";
  }
  return "?";
}
std::string to_string(FactorInit f) {
  switch (f) {
    case FactorInit::identity: return "identity";
    case FactorInit::data_pass: return "data_pass";
  }
  return "?";
}

OptimizerKind parse_optimizer_kind(const std::string& field, const std::string& s) {
  for (OptimizerKind k : all_optimizer_kinds)
    if (to_string(k) == s) return k;
  throw UsageError(field, fmt::format("unknown optimizer '{}' (expected one of {})", s, optimizer_kind_list()));
}
Regularization parse_regularization(const std::string& field, const std::string& s) {
  constexpr Regularization v[] = {Regularization::none, Regularization::l2, Regularization::wd};
  return parse_enum(field, s, v);
}
WdScope parse_wd_scope(const std::string& field, const std::string& s) {
  constexpr WdScope v[] = {WdScope::all, WdScope::conv, WdScope::fc, WdScope::list};
  return parse_enum(field, s, v);
}
MomentumKind parse_momentum_kind(const std::string& field, const std::string& s) {
  constexpr MomentumKind v[] = {MomentumKind::heavy_ball, MomentumKind::nesterov};
  return parse_enum(field, s, v);
}
InverseMethod parse_inverse_method(const std::string& field, const std::string& s) {
  constexpr InverseMethod v[] = {InverseMethod::cholesky, InverseMethod::eig};
  return parse_enum(field, s, v);
}
FactorInit parse_factor_init(const std::string& field, const std::string& s) {
  constexpr FactorInit v[] = {FactorInit::identity, FactorInit::data_pass};
  return parse_enum(field, s, v);
}

void RegConfig::validate() const {
  require(finite_in(weight_decay, 0.0, HUGE_VAL), "weight_decay",
          fmt::format("must be finite and >= 0, got {}", weight_decay));
  if (scope == WdScope::list)
    require(!wd_params.empty(), "wd_params", "scope list needs at least one parameter name");
  else
    require(wd_params.empty(), "wd_params",
            fmt::format("names are only read with scope list (scope is {})", to_string(scope)));
}

void SgdConfig::validate() const {
  require(finite_in(momentum, 0.0, 1.0) && momentum < 1.0, "momentum",
          fmt::format("must be in [0, 1), got {}", momentum));
}

void AdamConfig::validate() const {
  require(finite_in(beta1, 0.0, 1.0) && beta1 < 1.0, "beta1",
          fmt::format("must be in [0, 1), got {}", beta1));
  require(finite_in(beta2, 0.0, 1.0) && beta2 < 1.0, "beta2",
          fmt::format("must be in [0, 1), got {}", beta2));
  require(finite_in(eps, 0.0, HUGE_VAL) && eps > 0, "eps", fmt::format("must be > 0, got {}", eps));
}

void LionConfig::validate() const {
  require(finite_in(beta1, 0.0, 1.0) && beta1 < 1.0, "lion.beta1",
          fmt::format("must be in [0, 1), got {}", beta1));
  require(finite_in(beta2, 0.0, 1.0) && beta2 < 1.0, "lion.beta2",
          fmt::format("must be in [0, 1), got {}", beta2));
}

void KfacConfig::validate() const {
  require(finite_in(damping, 0.0, HUGE_VAL), "damping",
          fmt::format("must be finite and >= 0, got {}", damping));
  require(t_cov >= 1, "t_cov", fmt::format("must be >= 1, got {}", t_cov));
  require(t_inv >= 1, "t_inv", fmt::format("must be >= 1, got {}", t_inv));
  require(finite_in(cov_ema_decay, 0.0, 1.0) && cov_ema_decay < 1.0, "cov_ema_decay",
          fmt::format("must be in [0, 1), got {}", cov_ema_decay));
  require(finite_in(kl_clip, 0.0, HUGE_VAL), "kl_clip",
          fmt::format("must be finite and >= 0 (0 = off), got {}", kl_clip));
  require(finite_in(momentum, 0.0, 1.0) && momentum < 1.0, "momentum",
          fmt::format("must be in [0, 1), got {}", momentum));
  require(finite_in(gn_probe_variance, 0.0, HUGE_VAL) && gn_probe_variance > 0,
          "gn_probe_variance", fmt::format("must be > 0, got {}", gn_probe_variance));
  require(max_damping_raises >= 0 && max_damping_raises <= 30, "max_damping_raises",
          fmt::format("must be in [0, 30], got {}", max_damping_raises));
}

void OptimConfig::validate() const {
  switch (kind) {
    case OptimizerKind::sgd: sgd.validate(); break;
    case OptimizerKind::adam: adam.validate(); break;
    case OptimizerKind::kfac_f:
    case OptimizerKind::kfac_g: kfac.validate(); break;
    case OptimizerKind::lion: lion.validate(); break;
  }
  reg.validate();
}

MetricForms metric_forms(const OptimConfig& c) {
  switch (c.kind) {
    case OptimizerKind::sgd:
      switch (c.sgd.kind) {
        case MomentumKind::heavy_ball: return {ElrForm::momentum_sgd, RotationLaw::sgd_heavy_ball, c.sgd.momentum, 0.0};
        case MomentumKind::nesterov: return {ElrForm::momentum_sgd, RotationLaw::none, c.sgd.momentum, 0.0};
      }
      break;
    case OptimizerKind::adam: return {ElrForm::normalized, RotationLaw::adamw, c.adam.beta1, 0.0};
    case OptimizerKind::lion: return {ElrForm::normalized, RotationLaw::none, c.lion.beta1, 0.0, true};
    case OptimizerKind::kfac_f:
    case OptimizerKind::kfac_g: return {ElrForm::kfac_damped, RotationLaw::none, c.kfac.momentum, c.kfac.damping};
  }
  throw InternalError("metric_forms: unknown optimizer kind");
}

int param_state_tensors(OptimizerKind k) {
  switch (k) {
    case OptimizerKind::sgd: return 1;   // momentum
    case OptimizerKind::adam: return 2;  // m, v
    case OptimizerKind::lion: return 1;  // exp_avg
    case OptimizerKind::kfac_f:
    case OptimizerKind::kfac_g: return 0;
  }
  throw InternalError("param_state_tensors: unknown optimizer kind");
}

ScopeFamily scope_family(const NetworkSpec& spec, int layer) {
  const Layer& l = spec.layers.at(layer);
  if (l.kind == LayerKind::conv2d) return ScopeFamily::conv;
  if (l.kind == LayerKind::dense) return ScopeFamily::fc;
  int i = l.inputs.empty() ? -1 : l.inputs[0];
  while (i >= 0) {
    const Layer& p = spec.layers[i];
    if (p.kind == LayerKind::conv2d) return ScopeFamily::conv;
    if (p.kind == LayerKind::dense) return ScopeFamily::fc;
    if (p.kind == LayerKind::residual_add || p.inputs.empty()) break;
    i = p.inputs[0];
  }
  return l.in.H * l.in.W > 1 ? ScopeFamily::conv : ScopeFamily::fc;
}

bool decays(const ParamInfo& p, const NetworkSpec& spec, const RegConfig& reg) {
  if (reg.kind == Regularization::none || !p.trainable()) return false;
  if (reg.scope == WdScope::list)
    return std::find(reg.wd_params.begin(), reg.wd_params.end(), p.name) != reg.wd_params.end();
  if (p.role == ParamRole::bias && reg.biases == DecayBiases::no) return false;
  if ((p.role == ParamRole::bn_weight || p.role == ParamRole::bn_bias) && reg.bn == DecayBn::no)
    return false;
  switch (reg.scope) {
    case WdScope::all: return true;
    case WdScope::conv: return scope_family(spec, p.layer) == ScopeFamily::conv;
    case WdScope::fc: return scope_family(spec, p.layer) == ScopeFamily::fc;
    case WdScope::list: break;
  }
  return false;
}

void validate_scope(const RegConfig& reg, const NetworkSpec& spec) {
  if (reg.scope != WdScope::list) return;
  const auto params = spec.params();
  for (const auto& name : reg.wd_params) {
    const auto it = std::find_if(params.begin(), params.end(),
                                 [&](const ParamInfo& p) { return p.name == name; });
    if (it == params.end())
      throw UsageError("wd_params", fmt::format("no parameter named '{}' in {}", name, spec.model));
    if (!it->trainable())
      throw UsageError("wd_params", fmt::format("'{}' is a running statistic, never decayed", name));
  }
}

std::vector<char> decay_flags(const NetworkSpec& spec, const RegConfig& reg) {
  validate_scope(reg, spec);
  std::vector<char> out;
  for (const ParamInfo& p : spec.params()) out.push_back(decays(p, spec, reg) ? 1 : 0);
  return out;
}

void check_decay_flags(const NetworkSpec& spec, const std::vector<char>& flags) {
  const auto params = spec.params();
  if (flags.size() != params.size())
    throw InternalError(fmt::format("decay flags: {} for {} tensors", flags.size(), params.size()));
  for (std::size_t i = 0; i < params.size(); ++i)
    if (flags[i] && !params[i].trainable())
      throw InternalError(fmt::format("decay flags: running statistic {} marked as decayed", params[i].name));
}

}  // namespace wdlab::optim

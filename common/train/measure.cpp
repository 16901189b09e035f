// metric_rows: the one place where the mechanism metrics get their row names (measure.hpp), from
// the neutral summary a backend returns.
#include "common/train/measure.hpp"

#include <map>

#include "common/errors.hpp"

namespace wdlab::train {

namespace {

/// elr_opt, the optimizer's own effective learning rate (measure.hpp, group elr), in the form
/// its kind declares (optim::ElrForm, common/optim/optim_config.hpp has the formulas' sources).
double elr_opt(const OptimizerSummary& o, double lr, double norm) {
  const double n2 = norm * norm;
  switch (o.elr) {
    case optim::ElrForm::momentum_sgd: return lr / ((1 - o.momentum) * n2);
    case optim::ElrForm::normalized: return lr / norm;
    case optim::ElrForm::kfac_damped: return lr / ((1 - o.momentum) * o.damping * n2);
  }
  throw InternalError("elr_opt: unknown form");
}

}  // namespace

TensorDecay tensor_decay(const optim::OptimConfig& c, bool decays) {
  if (!decays) return TensorDecay::none;
  switch (c.reg.kind) {
    case optim::Regularization::none: return TensorDecay::none;
    case optim::Regularization::l2: return TensorDecay::l2;
    case optim::Regularization::wd: return TensorDecay::wd;
  }
  throw InternalError("tensor_decay: unknown regularization");
}

NamedValues metric_rows(const MeasureSummary& s, const MeasureRequest& req) {
  const MetricGroups& g = req.groups;
  NamedValues out;
  std::map<std::string, double> norm_of;
  for (const WeightSummary& w : s.weights) {
    norm_of[w.name] = w.norm;
    if (g.has(MetricGroup::norms)) out.emplace_back("norm." + w.name, w.norm);
    if (g.has(MetricGroup::elr)) {
      out.emplace_back("elr." + w.name, req.lr / (w.norm * w.norm));  // η/‖θ_l‖² (Eq. 9)
      if (s.optimizer) out.emplace_back("elr_opt." + w.name, elr_opt(*s.optimizer, req.lr, w.norm));
    }
  }
  const auto norm2 = [&](const std::string& weight) {
    const auto it = norm_of.find(weight);
    if (it == norm_of.end()) throw InternalError("metric_rows: no norm for " + weight);
    return it->second * it->second;
  };
  if (g.has(MetricGroup::damping) && s.optimizer)
    for (const DampingSummary& d : s.damping) {
      out.emplace_back("damping_eff." + d.weight, s.optimizer->damping * norm2(d.weight));  // λ‖θ_l‖² (Eq. 16)
      out.emplace_back("damping_frac." + d.weight, d.fraction);
    }
  if (g.has(MetricGroup::jacobian) && s.jac_norm) out.emplace_back("jac_norm", *s.jac_norm);
  if (g.has(MetricGroup::gn)) {
    if (s.kfac_gn_norm) out.emplace_back("kfac_gn_norm", *s.kfac_gn_norm);
    if (s.gn_norm) out.emplace_back("gn_norm", *s.gn_norm);
  }
  if (g.has(MetricGroup::trace))
    for (const TraceSummary& t : s.traces) {
      const double n2 = norm2(t.weight);  // C(θ̂_l) = ‖θ_l‖² C(θ_l) (Eq. 15)
      out.emplace_back("gn_trace." + t.weight, n2 * t.gn);
      out.emplace_back("fisher_trace." + t.weight, n2 * t.fisher);
      if (t.gn_exact && t.fisher_exact) {
        out.emplace_back("gn_trace_exact." + t.weight, n2 * *t.gn_exact);
        out.emplace_back("fisher_trace_exact." + t.weight, n2 * *t.fisher_exact);
      }
    }
  if (g.has(MetricGroup::jacobian_est) && s.jac_norm_est) out.emplace_back("jac_norm_est", *s.jac_norm_est);
  return out;
}

}  // namespace wdlab::train

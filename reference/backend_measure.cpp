// ReferenceBackend::measure and ::rescale_weights: the mechanism metrics (common/train/measure.hpp)
// from reference/net/metrics.hpp, and wn-conv's rescaling.
#include <cmath>

#include "common/errors.hpp"
#include "reference/backend.hpp"
#include "reference/net/metrics.hpp"
#include "reference/optim/kfac.hpp"

namespace wdlab::ref {

template <class T>
train::NamedValues ReferenceBackend<T>::measure(const train::HostBatch& probe, const train::MeasureRequest& req) {
  using train::MetricGroup;
  const train::MetricGroups& g = req.groups;
  train::NamedValues out;
  std::vector<double> norm(params_.info.size(), 0.0);  // ‖W_l‖ of weight tensors
  for (std::size_t i = 0; i < params_.info.size(); ++i)
    if (params_.info[i].role == ParamRole::weight) norm[i] = double(params_.values[i].template cast<double>().norm());
  const bool kfac = optim::is_kfac(optim_cfg_.kind);
  const double lambda = optim_cfg_.kfac.damping;
  for (std::size_t i = 0; i < params_.info.size(); ++i) {
    if (params_.info[i].role != ParamRole::weight) continue;
    const std::string& name = params_.info[i].name;
    const double n2 = norm[i] * norm[i];
    if (g.has(MetricGroup::norms)) out.emplace_back("norm." + name, norm[i]);
    if (g.has(MetricGroup::elr)) {
      out.emplace_back("elr." + name, req.lr / n2);  // η/‖θ_l‖² (Eq. 9)
      // The optimizer's own form (common/optim/optim_config.hpp, one formula for both backends).
      out.emplace_back("elr_opt." + name, optim::elr_opt(optim_cfg_, req.lr, norm[i]));
    }
  }
  if (g.has(MetricGroup::damping) && kfac) {
    const auto& k = dynamic_cast<const Kfac<T>&>(*opt_);
    for (int b = 0; b < k.num_blocks(); ++b) {
      const auto v = k.block(b);
      const int w = params_.slots[v.layer].weight;
      const std::string& name = params_.info[w].name;
      out.emplace_back("damping_eff." + name, lambda * norm[w] * norm[w]);  // λ‖θ_l‖² (Eq. 16)
      out.emplace_back("damping_frac." + name, damping_fraction(v.A, v.S, v.locations, lambda));
    }
  }
  const bool jac = g.has(MetricGroup::jacobian), gn = g.has(MetricGroup::gn), tr = g.has(MetricGroup::trace);
  if (jac || gn || tr || g.has(MetricGroup::jacobian_est)) {
    if (probe.n < 1) throw UsageError("metrics", "the curvature metrics need a probe set of at least one example");
    const Mat<T> x = to_matrix(probe);
    if (jac || gn || tr) {
      // The K-FAC-block metrics take BN as req.curvature_bn says; jac_norm and gn_norm are
      // properties of the per-example function and take eval mode (common/train/measure.hpp).
      const CurvatureBnPass bn{req.curvature_bn, req.seed, req.rng_step};
      const bool batch = req.curvature_bn == train::CurvatureBn::batch;
      const auto gp = output_pass(spec_, params_, x, OutputMetric::gauss_newton,
                                  jac && !batch ? InputGrad::compute : InputGrad::skip, bn);
      const auto ep = batch && (jac || gn)
                          ? output_pass(spec_, params_, x, OutputMetric::gauss_newton,
                                        jac ? InputGrad::compute : InputGrad::skip)
                          : OutputPass<T>{};
      const auto& per_example = batch ? ep : gp;
      if (jac) out.emplace_back("jac_norm", per_example.jac_norm);
      if (gn) {
        out.emplace_back("kfac_gn_norm", kfac_norm(spec_, params_, gp.layers));
        out.emplace_back("gn_norm", per_example.theta_norm);
      }
      if (tr) {
        const auto fp = output_pass(spec_, params_, x, OutputMetric::fisher, InputGrad::skip, bn);
        for (std::size_t b = 0; b < gp.layers.size(); ++b) {
          const int w = params_.slots[gp.layers[b].factors.layer].weight;
          const double n2 = norm[w] * norm[w];  // C(θ̂_l) = ‖θ_l‖² C(θ_l) (Eq. 15)
          out.emplace_back("gn_trace." + gp.layers[b].weight, n2 * kfac_trace(gp.layers[b].factors));
          out.emplace_back("fisher_trace." + gp.layers[b].weight, n2 * kfac_trace(fp.layers[b].factors));
          if (std::isfinite(gp.layers[b].exact_trace)) {
            out.emplace_back("gn_trace_exact." + gp.layers[b].weight, n2 * gp.layers[b].exact_trace);
            out.emplace_back("fisher_trace_exact." + gp.layers[b].weight, n2 * fp.layers[b].exact_trace);
          }
        }
      }
    }
    if (g.has(MetricGroup::jacobian_est)) {
      const auto est = jacobian_norm_estimates(spec_, params_, x, req.jac_probes, req.probe_distribution, req.seed,
                                               req.rng_step);
      double mean = 0;
      for (double e : est) mean += e / double(est.size());
      out.emplace_back("jac_norm_est", mean);
    }
  }
  return out;
}

template <class T>
void ReferenceBackend<T>::rescale_weights(const train::NamedValues& targets) {
  ParamStore<T> p = params_;  // all or nothing
  for (const auto& [name, target] : targets) rescale_weight(spec_, p, name, target);
  params_ = std::move(p);
}

template train::NamedValues ReferenceBackend<double>::measure(const train::HostBatch&, const train::MeasureRequest&);
template train::NamedValues ReferenceBackend<float>::measure(const train::HostBatch&, const train::MeasureRequest&);
template void ReferenceBackend<double>::rescale_weights(const train::NamedValues&);
template void ReferenceBackend<float>::rescale_weights(const train::NamedValues&);

}  // namespace wdlab::ref

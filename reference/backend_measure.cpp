// ReferenceBackend::measure_summary and ::rescale_weights: the numbers behind the mechanism
// metrics (common/train/measure.hpp names the rows) from reference/net/metrics.hpp, and wn-conv's
// rescaling.
#include <cmath>

#include "common/errors.hpp"
#include "common/train/rotation.hpp"
#include "reference/backend.hpp"
#include "reference/net/metrics.hpp"
#include "reference/optim/kfac.hpp"

namespace wdlab::ref {

template <class T>
train::MeasureSummary ReferenceBackend<T>::measure_summary(const train::HostBatch& probe,
                                                           const train::MeasureRequest& req) {
  using train::MetricGroup;
  const train::MetricGroups& g = req.groups;
  train::MeasureSummary out;
  std::vector<double> norm(params_.info.size(), 0.0);  // ‖W_l‖ of weight tensors
  for (std::size_t i = 0; i < params_.info.size(); ++i) {
    if (params_.info[i].role != ParamRole::weight) continue;
    norm[i] = double(params_.values[i].template cast<double>().norm());
    const train::TensorDecay decay = train::tensor_decay(optim_cfg_, opt_->decays(int(i)));
    out.weights.push_back(train::WeightSummary{
        params_.info[i].name, norm[i], decay, decay == train::TensorDecay::none ? 0.0 : optim_cfg_.reg.weight_decay,
        train::weight_scale_invariance(spec_, params_.info[i].layer)});
  }
  const bool kfac = optim::is_kfac(optim_cfg_.kind);
  out.optimizer = optim::metric_forms(optim_cfg_);
  if (g.has(MetricGroup::damping) && kfac) {
    const auto& k = dynamic_cast<const Kfac<T>&>(*opt_);
    for (int b = 0; b < k.num_blocks(); ++b) {
      const auto v = k.block(b);
      const int w = params_.slots[v.layer].weight;
      out.damping.push_back({params_.info[w].name, damping_fraction(v.A, v.S, v.locations, optim_cfg_.kfac.damping)});
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
      if (jac) out.jac_norm = per_example.jac_norm;
      if (gn) {
        out.kfac_gn_norm = kfac_norm(spec_, params_, gp.layers);
        out.gn_norm = per_example.theta_norm;
      }
      if (tr) {
        const auto fp = output_pass(spec_, params_, x, OutputMetric::fisher, InputGrad::skip, bn);
        for (std::size_t b = 0; b < gp.layers.size(); ++b) {
          train::TraceSummary t{gp.layers[b].weight, kfac_trace(gp.layers[b].factors),
                                kfac_trace(fp.layers[b].factors), std::nullopt, std::nullopt};
          if (std::isfinite(gp.layers[b].exact_trace)) {
            t.gn_exact = gp.layers[b].exact_trace;
            t.fisher_exact = fp.layers[b].exact_trace;
          }
          out.traces.push_back(std::move(t));
        }
      }
    }
    if (g.has(MetricGroup::jacobian_est)) {
      const auto est = jacobian_norm_estimates(spec_, params_, x, req.jac_probes, req.probe_distribution, req.seed,
                                               req.rng_step);
      double mean = 0;
      for (double e : est) mean += e / double(est.size());
      out.jac_norm_est = mean;
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

template train::MeasureSummary ReferenceBackend<double>::measure_summary(const train::HostBatch&,
                                                                         const train::MeasureRequest&);
template train::MeasureSummary ReferenceBackend<float>::measure_summary(const train::HostBatch&,
                                                                        const train::MeasureRequest&);
template void ReferenceBackend<double>::rescale_weights(const train::NamedValues&);
template void ReferenceBackend<float>::rescale_weights(const train::NamedValues&);

}  // namespace wdlab::ref

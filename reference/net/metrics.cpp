// The mechanism metrics on the reference engine (see metrics.hpp for the formulas).
#include "reference/net/metrics.hpp"

#include <cmath>
#include <limits>
#include <span>

#include <Eigen/Eigenvalues>
#include <fmt/format.h>

#include "common/errors.hpp"
#include "common/optim/kfac_policy.hpp"
#include "common/philox.hpp"
#include "reference/ops/conv2d.hpp"
#include "reference/ops/loss.hpp"

namespace wdlab::ref {

namespace {

/// [W b] in the compute layout (out × in, plus a last column b when the layer has a bias).
template <class T>
Mat<T> wbar(const ParamStore<T>& p, int layer) {
  const LayerSlots& s = p.slots[layer];
  const Mat<T>& W = p.values[s.weight];
  if (s.bias < 0) return W;
  Mat<T> w(W.rows(), W.cols() + 1);
  w << W, p.values[s.bias];
  return w;
}

}  // namespace

double curvature_sign(std::uint64_t seed, std::uint64_t step, std::uint64_t n) {
  return rng::uniform(seed, rng::Purpose::curvature_sign, step, n) < 0.5 ? -1.0 : 1.0;
}

template <class T>
OutputPass<T> output_pass(const NetworkSpec& spec, const ParamStore<T>& p, const Mat<T>& x,
                          OutputMetric metric, InputGrad input, const CurvatureBnPass& bn) {
  const bool batch = bn.mode == train::CurvatureBn::batch;
  // Batch mode: BN normalizes with the probe batch's statistics (the running ones stay as they
  // are) and the backward runs through them.
  const auto fw = network_forward(spec, p, x, batch ? BnMode::train : BnMode::eval);
  const Eigen::Index K = spec.classes, N = x.cols();
  WDLAB_CHECK(N > 0, "empty probe batch");
  OutputPass<T> out;
  std::vector<Eigen::VectorXd> abar_sq;  // dense: ‖ā_n‖² per example
  for (int i = 0; i < int(spec.layers.size()); ++i) {
    const Layer& l = spec.layers[i];
    if (!l.has_weights()) continue;
    const Mat<T>& in = fw.input_of(spec, i);
    LayerCurvature<T> c;
    c.weight = p.info[p.slots[i].weight].name;
    c.factors.layer = i;
    if (l.kind == LayerKind::dense) {
      Mat<T> a = in;
      if (l.bias == Bias::on) {  // homogeneous coordinate
        a.conservativeResize(a.rows() + 1, Eigen::NoChange);
        a.row(a.rows() - 1).setOnes();
      }
      c.factors.A.noalias() = a * a.transpose() / T(N);  // A = E[ā āᵀ]
      abar_sq.push_back(a.colwise().squaredNorm().transpose().template cast<double>());
    } else {
      const Conv2dGeometry g = l.conv_geometry(int(N));
      c.factors.A = conv2d_kfc_input_factor(g, in, l.bias == Bias::on ? Homogeneous::on : Homogeneous::off);
      c.factors.locations = g.locations();
      abar_sq.emplace_back();
      c.exact_trace = std::numeric_limits<double>::quiet_NaN();
    }
    c.factors.S = Mat<T>::Zero(l.out.C, l.out.C);
    out.layers.push_back(std::move(c));
  }
  const Mat<T> probs = metric == OutputMetric::fisher ? softmax_fprop<T>(fw.logits()) : Mat<T>();
  Eigen::MatrixXd u = Eigen::MatrixXd::Zero(K, N);  // u(j, n) = (B_n e_j)ᵀ J_n θ
  double jac = 0;
  for (Eigen::Index j = 0; j < K; ++j) {
    Mat<T> C = Mat<T>::Zero(K, N);  // column n: B_n e_j
    if (metric == OutputMetric::gauss_newton) {
      C.row(j).setOnes();
    } else {
      for (Eigen::Index n = 0; n < N; ++n) {
        const T r = std::sqrt(probs(j, n));
        C.col(n) = -r * probs.col(n);  // √p_j (e_j − p)
        C(j, n) += r;
      }
    }
    if (batch)  // s_n·B_n e_j: independent signs remove the cross-example terms in expectation
      for (Eigen::Index n = 0; n < N; ++n) C.col(n) *= T(curvature_sign(bn.seed, bn.step, std::uint64_t(n)));
    const auto bw = network_backward(spec, p, fw, C, input);
    if (input == InputGrad::compute) jac += double(bw.d_input.template cast<double>().squaredNorm());
    for (std::size_t b = 0; b < out.layers.size(); ++b) {
      LayerCurvature<T>& c = out.layers[b];
      const int i = c.factors.layer;
      const Mat<T>& g = bw.d_out[i];
      WDLAB_CHECK(g.size() > 0, "a weight layer's output does not reach the logits");
      if (spec.layers[i].kind == LayerKind::dense) {
        c.factors.S.noalias() += g * g.transpose();  // /N below
        c.exact_trace += abar_sq[b].dot(g.colwise().squaredNorm().transpose().template cast<double>());
      } else {
        c.factors.S += conv2d_kfc_output_factor(spec.layers[i].conv_geometry(int(N)), g);
      }
      // ⟨∇_{W̄} f, W̄⟩ = Σ_t g_tᵀ W̄ ā_t = ⟨g, out⟩ per example (out = W̄ā: the layer's output).
      u.row(j) += g.cwiseProduct(fw.out[i]).colwise().sum().template cast<double>();
    }
  }
  for (std::size_t b = 0; b < out.layers.size(); ++b)
    if (spec.layers[out.layers[b].factors.layer].kind == LayerKind::dense) {
      out.layers[b].factors.S /= T(N);
      out.layers[b].exact_trace /= double(N);
    }
  out.theta_norm = u.squaredNorm() / double(N);
  out.jac_norm = jac / double(N);
  return out;
}

template <class T>
double kfac_norm(const NetworkSpec& spec, const ParamStore<T>& p,
                 const std::vector<LayerCurvature<T>>& layers) {
  (void)spec;
  double total = 0;
  for (const auto& c : layers) {
    const Mat<double> w = wbar(p, c.factors.layer).template cast<double>();
    const Mat<double> A = c.factors.A.template cast<double>(), S = c.factors.S.template cast<double>();
    WDLAB_CHECK(A.rows() == w.cols() && S.rows() == w.rows(), "factor sizes do not match [W b]");
    // tr(W̄ᵀ S W̄ A) = Σ (S W̄) ⊙ (W̄ A) for symmetric A, S
    total += c.factors.locations * (S * w).cwiseProduct(w * A).sum();
  }
  return total;
}

template <class T>
double kfac_trace(const FactorStats<T>& f) {
  return double(f.locations) * double(f.A.trace()) * double(f.S.trace());
}

template <class T>
double damping_fraction(const Mat<T>& A, const Mat<T>& S, int locations, double lambda) {
  using Solver = Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd>;
  const Eigen::VectorXd a = Solver(A.template cast<double>(), Eigen::EigenvaluesOnly).eigenvalues();
  const Eigen::VectorXd s = Solver(S.template cast<double>(), Eigen::EigenvaluesOnly).eigenvalues();
  return optim::damping_fraction(std::span<const double>(a.data(), std::size_t(a.size())),
                                 std::span<const double>(s.data(), std::size_t(s.size())), locations, lambda);
}

template <class T>
std::vector<double> jacobian_norm_estimates(const NetworkSpec& spec, const ParamStore<T>& p,
                                            const Mat<T>& x, int probes,
                                            train::ProbeDistribution dist, std::uint64_t seed,
                                            std::uint64_t rng_step) {
  WDLAB_CHECK(probes > 0, "need at least one probe");
  const auto fw = network_forward(spec, p, x, BnMode::eval);
  const Eigen::Index K = spec.classes, N = x.cols();
  std::vector<double> est;
  for (int m = 0; m < probes; ++m) {
    const std::uint64_t step = (rng_step << 32) + std::uint64_t(m);
    Mat<T> v(K, N);
    for (Eigen::Index n = 0; n < N; ++n)
      for (Eigen::Index k = 0; k < K; ++k) {
        const std::uint64_t idx = std::uint64_t(n * K + k);
        v(k, n) = dist == train::ProbeDistribution::rademacher
                      ? (rng::uniform(seed, rng::Purpose::jacobian_probe, step, idx) < 0.5 ? T(-1) : T(1))
                      : T(rng::normal(seed, rng::Purpose::jacobian_probe, step, idx));
      }
    // E_v ‖J_xᵀ v‖² = tr(J_x J_xᵀ E[v vᵀ]) = ‖J_x‖²_F
    const auto bw = network_backward(spec, p, fw, v, InputGrad::compute);
    est.push_back(double(bw.d_input.template cast<double>().squaredNorm()) / double(N));
  }
  return est;
}

template <class T>
void rescale_weight(const NetworkSpec& spec, ParamStore<T>& p, const std::string& weight,
                    double target) {
  const int t = p.find(weight);
  if (t < 0 || p.info[t].role != ParamRole::weight)
    throw UsageError("wn", fmt::format("\"{}\" is not a weight tensor of the network", weight));
  if (!(std::isfinite(target) && target > 0))
    throw UsageError("wn", fmt::format("target norm of {} must be finite and > 0, got {}", weight, target));
  const int layer = p.info[t].layer;
  std::vector<int> consumers;
  for (int j = layer + 1; j < int(spec.layers.size()); ++j)
    for (int in : spec.layers[j].inputs)
      if (in == layer) consumers.push_back(j);
  if (consumers.size() != 1 || spec.layers[consumers[0]].kind != LayerKind::batchnorm)
    throw PreconditionError(fmt::format("wn: layer {} is not followed by BN alone, so rescaling {} would "
                                        "change the network's function", spec.layers[layer].name, weight));
  const double norm = double(p.values[t].template cast<double>().norm());
  if (!(norm > 0)) throw UsageError("wn", fmt::format("{} is zero and cannot be rescaled", weight));
  const T c = T(target / norm);
  p.values[t] *= c;
  if (p.slots[layer].bias >= 0) p.values[p.slots[layer].bias] *= c;
  const LayerSlots& bn = p.slots[consumers[0]];
  p.values[bn.running_mean] *= c;
  p.values[bn.running_var] *= c * c;
}

#define WDLAB_INSTANTIATE(T)                                                                     \
  template OutputPass<T> output_pass<T>(const NetworkSpec&, const ParamStore<T>&, const Mat<T>&, \
                                        OutputMetric, InputGrad, const CurvatureBnPass&);        \
  template double kfac_norm<T>(const NetworkSpec&, const ParamStore<T>&,                          \
                               const std::vector<LayerCurvature<T>>&);                            \
  template double kfac_trace<T>(const FactorStats<T>&);                                          \
  template double damping_fraction<T>(const Mat<T>&, const Mat<T>&, int, double);                 \
  template std::vector<double> jacobian_norm_estimates<T>(const NetworkSpec&, const ParamStore<T>&, \
                                                          const Mat<T>&, int,                     \
                                                          train::ProbeDistribution, std::uint64_t, \
                                                          std::uint64_t);                         \
  template void rescale_weight<T>(const NetworkSpec&, ParamStore<T>&, const std::string&, double);
WDLAB_INSTANTIATE(double)
WDLAB_INSTANTIATE(float)
#undef WDLAB_INSTANTIATE

}  // namespace wdlab::ref

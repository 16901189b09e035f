// The reference side of the crosscheck: the Eigen engine (reference/net, reference/ops,
// reference/optim) in double or float, returning every quantity of a case under the names and
// layouts of tensors.hpp. Tensor names are built by the helpers in tensor_names.hpp, shared with
// the other sides.
#include <cmath>

#include <fmt/format.h>

#include "apps/crosscheck/side.hpp"
#include "apps/crosscheck/tensor_names.hpp"
#include "common/errors.hpp"
#include "reference/backend.hpp"
#include "reference/net/network.hpp"
#include "reference/ops/conv2d.hpp"
#include "reference/ops/loss.hpp"
#include "reference/optim/damped_inverse.hpp"
#include "common/optim/kfac_policy.hpp"

namespace wdlab::xcheck {

namespace {

using ref::Mat;
using ref::Vec;

template <class T>
Mat<T> input_matrix(const NetworkSpec& spec, const Batch& b, int N) {
  return Eigen::Map<const Mat<double>>(b.x.data(), spec.input.size(), N).cast<T>();
}

template <class T>
ref::ParamStore<T> param_store(const NetworkSpec& spec, const Tensors& params) {
  auto p = ref::ParamStore<T>::zeros(spec);
  for (std::size_t i = 0; i < p.info.size(); ++i) {
    WDLAB_CHECK(params.at(i).name == p.info[i].name, "case parameters out of order");
    std::vector<T> v(params[i].data.begin(), params[i].data.end());
    p.values[i] = ref::from_pytorch_order<T>(p.info[i], v);
  }
  return p;
}

/// (C·H·W)×N column-per-example = NCHW memory.
template <class T>
Tensor activation(std::string name, Quantity q, const Mat<T>& m, Shape s) {
  Tensor t{std::move(name), q, {m.cols(), s.C, s.H, s.W}, {}, ""};
  t.data.assign(m.data(), m.data() + m.size());
  return t;
}

template <class T>
Tensor matrix(std::string name, Quantity q, const Mat<T>& m) {
  Tensor t{std::move(name), q, {m.rows(), m.cols()}, {}, ""};
  t.data.resize(m.size());
  for (Eigen::Index r = 0; r < m.rows(); ++r)
    for (Eigen::Index c = 0; c < m.cols(); ++c) t.data[r * m.cols() + c] = double(m(r, c));
  return t;
}

template <class T>
Tensor param(std::string name, Quantity q, const ParamInfo& info, const Mat<T>& m) {
  Tensor t{std::move(name), q, info.shape, {}, ""};
  const auto v = ref::to_pytorch_order(info, m);
  t.data.assign(v.begin(), v.end());
  return t;
}

Tensor scalar(std::string name, Quantity q, double v) { return Tensor{std::move(name), q, {1}, {v}, ""}; }

template <class T>
Tensor vec(std::string name, Quantity q, const Vec<T>& v) {
  Tensor t{std::move(name), q, {v.size()}, {}, ""};
  t.data.assign(v.data(), v.data() + v.size());
  return t;
}

}  // namespace

train::MeasureRequest measure_request(const Case& c) {
  train::MeasureRequest r;
  for (auto g : {train::MetricGroup::norms, train::MetricGroup::elr, train::MetricGroup::damping,
                 train::MetricGroup::jacobian, train::MetricGroup::jacobian_est, train::MetricGroup::gn,
                 train::MetricGroup::trace})
    r.groups.add(g);
  r.lr = c.lr;
  r.jac_probes = 4;
  r.seed = c.seed;
  return r;
}

train::MeasureRequest measure_request_batch_bn(const Case& c) {
  train::MeasureRequest r = measure_request(c);
  r.groups = train::MetricGroups{};
  r.groups.add(train::MetricGroup::gn).add(train::MetricGroup::trace);
  r.curvature_bn = train::CurvatureBn::batch;
  return r;
}

namespace {

/// ‖(Σ_{n,t} |dy_{k,n,t}|)_k‖: the magnitude the bias gradient Σ_{n,t} dy sums (tensors.hpp).
/// dy is (K·T)×N, channel k owning rows [k·T, (k+1)·T).
template <class T>
double bias_scale(const Mat<T>& dy, int K) {
  const Eigen::Index t = dy.rows() / K;
  double s2 = 0;
  for (int k = 0; k < K; ++k) {
    const double s = double(dy.middleRows(k * t, t).cwiseAbs().sum());
    s2 += s * s;
  }
  return std::sqrt(s2);
}

/// The gradients of every trainable tensor; biases carry the scale of their sum.
template <class T>
void append_grads(Tensors& out, const NetworkSpec& spec, const ref::ParamStore<T>& p, const ref::NetBackward<T>& bw) {
  for (std::size_t i = 0; i < p.info.size(); ++i) {
    if (!p.info[i].trainable()) continue;
    Tensor t = param(names::grad(p.info[i].name), Quantity::param_grad, p.info[i], bw.grads.values[i]);
    const int layer = p.info[i].layer;
    if (p.info[i].role == ParamRole::bias && bw.d_out[layer].size() > 0)
      t.scale = bias_scale(bw.d_out[layer], spec.layers[layer].out.C);
    out.push_back(std::move(t));
  }
}

template <class T>
class ReferenceSide final : public Side {
 public:
  std::string name() const override {
    return std::is_same_v<T, double> ? "reference-double" : "reference-float";
  }
  Precision precision() const override {
    return std::is_same_v<T, double> ? Precision::float64 : Precision::float32;
  }
  Tensors run(const Case& c, const CaseData& d) override {
    switch (c.kind) {
      case CaseKind::layer: return run_layer(c, d);
      case CaseKind::loss: return run_loss(c, d);
      case CaseKind::network: return run_network(c, d);
      case CaseKind::optimizer: return run_optimizer(c, d);
    }
    throw InternalError("reference side: unknown case kind");
  }

 private:
  Tensors run_layer(const Case& c, const CaseData& d) const {
    const NetworkSpec& spec = c.spec;
    const int N = c.batch;
    auto p = param_store<T>(spec, d.params);
    const Mat<T> x = input_matrix<T>(spec, d.batches[0], N);
    const Layer& l = spec.layers[0];
    const Mat<T> dy = Eigen::Map<const Mat<double>>(d.cotangent.data(), l.out.size(), N).cast<T>();
    const auto fw = ref::network_forward(spec, p, x, ref::BnMode::train);
    Tensors out;
    out.push_back(activation(names::layer_output(), output_quantity(l.kind), fw.out[0], l.out));
    const auto bw = ref::network_backward(spec, p, fw, dy, ref::InputGrad::compute);
    out.push_back(activation(names::input_grad(), Quantity::activation_grad, bw.d_input, spec.input));
    append_grads(out, spec, p, bw);
    if (l.kind == LayerKind::dense) {
      Mat<T> a = x;
      if (l.bias == Bias::on) {
        a.conservativeResize(a.rows() + 1, Eigen::NoChange);
        a.row(a.rows() - 1).setOnes();
      }
      out.push_back(matrix(names::layer_factor('A'), Quantity::kfac_factor, Mat<T>(a * a.transpose() / T(N))));
      out.push_back(matrix(names::layer_factor('S'), Quantity::kfac_factor, Mat<T>(dy * dy.transpose() / T(N))));
    } else if (l.kind == LayerKind::conv2d) {
      const auto g = l.conv_geometry(N);
      out.push_back(matrix(names::layer_factor('A'), Quantity::kfac_factor,
                           ref::conv2d_kfc_input_factor(g, x, l.bias == Bias::on ? ref::Homogeneous::on : ref::Homogeneous::off)));
      out.push_back(matrix(names::layer_factor('S'), Quantity::kfac_factor, ref::conv2d_kfc_output_factor(g, dy)));
    } else if (l.kind == LayerKind::batchnorm) {
      append_bn(out, spec, p, fw, x);
    }
    return out;
  }

  /// Batch statistics, running statistics after one update and the eval-mode output with them.
  void append_bn(Tensors& out, const NetworkSpec& spec, ref::ParamStore<T>& p, const ref::NetForward<T>& fw,
                 const Mat<T>& x) const {
    for (int i = 0; i < int(spec.layers.size()); ++i) {
      if (spec.layers[i].kind != LayerKind::batchnorm) continue;
      const std::string tag = names::layer_tag(spec, i);
      out.push_back(vec(names::bn_stat("mean", tag), Quantity::bn_statistic, fw.bn[i]->mean));
      out.push_back(vec(names::bn_stat("var", tag), Quantity::bn_statistic, fw.bn[i]->var));
    }
    ref::update_running_stats(spec, p, fw);
    for (std::size_t i = 0; i < p.info.size(); ++i)
      if (!p.info[i].trainable())
        out.push_back(param(names::running(p.info[i].name), Quantity::bn_statistic, p.info[i], p.values[i]));
    const auto ev = ref::network_forward(spec, p, x, ref::BnMode::eval);
    for (int i = 0; i < int(spec.layers.size()); ++i)
      if (spec.layers[i].kind == LayerKind::batchnorm)
        out.push_back(activation(names::bn_eval_output(names::layer_tag(spec, i)), Quantity::bn_output, ev.out[i],
                                 spec.layers[i].out));
  }

  Tensors run_loss(const Case& c, const CaseData& d) const {
    const Mat<T> z = Eigen::Map<const Mat<double>>(d.outputs.data(), c.loss_classes, c.batch).cast<T>();
    Tensors out;
    switch (c.loss) {
      case LossKind::softmax_cross_entropy: {
        const Eigen::VectorXi y = Eigen::Map<const Eigen::VectorXi>(d.batches[0].labels.data(), c.batch);
        const auto ce = ref::softmax_cross_entropy<T>(z, y);
        out.push_back(scalar(names::loss(), Quantity::loss, double(ce.loss)));
        out.push_back(matrix(names::loss_probs(), Quantity::activation, Mat<T>(ce.probs.transpose())));
        out.push_back(matrix(names::loss_grad(), Quantity::activation_grad, Mat<T>(ce.dlogits.transpose())));
        break;
      }
      case LossKind::squared_error: {
        const Mat<T> t = Eigen::Map<const Mat<double>>(d.targets.data(), c.loss_classes, c.batch).cast<T>();
        const auto se = ref::squared_error<T>(z, t);
        out.push_back(scalar(names::loss(), Quantity::loss, double(se.loss)));
        out.push_back(matrix(names::loss_grad(), Quantity::activation_grad, Mat<T>(se.dout.transpose())));
        break;
      }
    }
    return out;
  }

  Tensors run_network(const Case& c, const CaseData& d) const {
    const NetworkSpec& spec = c.spec;
    const int N = c.batch;
    auto p = param_store<T>(spec, d.params);
    const Mat<T> x = input_matrix<T>(spec, d.batches[0], N);
    const Eigen::VectorXi y = Eigen::Map<const Eigen::VectorXi>(d.batches[0].labels.data(), N);
    const auto fw = ref::network_forward(spec, p, x, ref::BnMode::train);
    Tensors out;
    for (int i = 0; i < int(spec.layers.size()); ++i) {
      const Layer& l = spec.layers[i];
      if (l.kind == LayerKind::flatten) continue;  // a copy: the next layer's input shows it
      out.push_back(activation(names::forward(spec, i), output_quantity(l.kind), fw.out[i], l.out));
    }
    const auto ce = ref::softmax_cross_entropy<T>(fw.logits(), y);
    out.push_back(scalar(names::loss(), Quantity::loss, double(ce.loss)));
    const auto bw = ref::network_backward(spec, p, fw, ce.dlogits, ref::InputGrad::compute);
    for (int i = 0; i < int(spec.layers.size()); ++i)
      if (spec.layers[i].kind != LayerKind::flatten && bw.d_out[i].size() > 0)
        out.push_back(activation(names::backward(spec, i), Quantity::activation_grad, bw.d_out[i], spec.layers[i].out));
    out.push_back(activation(names::input_grad(), Quantity::activation_grad, bw.d_input, spec.input));
    append_grads(out, spec, p, bw);
    append_curvature(out, c, p, x, bw.grads);
    // ‖θ_l‖ and η/‖θ_l‖² as the reference backend measures them (side.hpp).
    ref::ReferenceBackend<T> be(spec, p, c.optim, c.seed);
    append_weight_metrics(out, be.measure(train::HostBatch{}, weight_metrics_request(c)));
    auto q = p;
    append_bn(out, spec, q, fw, x);
    return out;
  }

  /// K-FAC-F and K-FAC-G statistics (step 0 of the case's seed), their damped inverses and the
  /// preconditioned gradient U = S̃⁻¹ [dW db] Ã⁻¹ / T, plus the factor metrics.
  void append_curvature(Tensors& out, const Case& c, const ref::ParamStore<T>& p, const Mat<T>& x,
                        const ref::ParamStore<T>& grads) const {
    const NetworkSpec& spec = c.spec;
    const optim::KfacConfig kc = crosscheck_optim(optim::OptimizerKind::kfac_f).kfac;
    for (auto kind : {ref::CurvatureKind::fisher, ref::CurvatureKind::gauss_newton}) {
      const std::string est = kind == ref::CurvatureKind::fisher ? "kfac_f" : "kfac_g";
      const auto stats = ref::kfac_statistics(spec, p, x, kind, 1.0, c.seed, 0);
      double gn_quadratic = 0;
      for (const auto& st : stats) {
        const Layer& l = spec.layers[st.layer];
        const auto& slots = p.slots[st.layer];
        out.push_back(matrix(names::factor(est, 'A', l.name), Quantity::kfac_factor, st.A));
        out.push_back(matrix(names::factor(est, 'S', l.name), Quantity::kfac_factor, st.S));
        const auto split = optim::pi_split_damping(double(st.A.trace()), int(st.A.rows()), double(st.S.trace()), int(st.S.rows()),
                                                      kc.damping, st.locations);
        const auto ai = ref::damped_inverse(st.A, split.a, kc.inverse, kc.max_damping_raises);
        const auto si = ref::damped_inverse(st.S, split.s, kc.inverse, kc.max_damping_raises);
        out.push_back(matrix(names::inverse(est, 'A', l.name), Quantity::damped_inverse, ai.inverse));
        out.push_back(matrix(names::inverse(est, 'S', l.name), Quantity::damped_inverse, si.inverse));
        const Eigen::Index in = p.values[slots.weight].cols();
        Mat<T> G(p.values[slots.weight].rows(), st.A.rows()), W(G.rows(), G.cols());
        G.leftCols(in) = grads.values[slots.weight];
        W.leftCols(in) = p.values[slots.weight];
        if (slots.bias >= 0) {
          G.col(in) = grads.values[slots.bias];
          W.col(in) = p.values[slots.bias];
        }
        Mat<T> U = si.inverse * G * ai.inverse / T(st.locations);
        out.push_back(param(names::update(est, p.info[slots.weight].name), Quantity::preconditioned,
                            p.info[slots.weight], Mat<T>(U.leftCols(in))));
        if (slots.bias >= 0)
          out.push_back(param(names::update(est, p.info[slots.bias].name), Quantity::preconditioned,
                              p.info[slots.bias], Mat<T>(U.col(in))));
        // T·tr(A)·tr(S): the trace of the layer's K-FAC block; θ̄ᵀ(T·A⊗S)θ̄ = T·tr(S W̄ A W̄ᵀ).
        out.push_back(scalar(names::metric(est + "_trace", l.name), Quantity::metric,
                             double(st.locations) * double(st.A.trace()) * double(st.S.trace())));
        gn_quadratic += double(st.locations) * double((st.S * W * st.A * W.transpose()).trace());
      }
      if (kind == ref::CurvatureKind::gauss_newton)
        out.push_back(scalar(names::metric("kfac_gn_quadratic", ""), Quantity::metric, gn_quadratic));
    }
  }

  Tensors run_optimizer(const Case& c, const CaseData& d) const {
    const NetworkSpec& spec = c.spec;
    ref::ReferenceBackend<T> be(spec, param_store<T>(spec, d.params), c.optim, c.seed);
    auto host = [&](const Batch& b, std::vector<float>& images) {
      images.assign(b.x.begin(), b.x.end());
      return train::HostBatch{images, b.labels, c.batch};
    };
    std::vector<float> images;
    Tensors out;
    if (be.wants_factor_init()) {
      be.accumulate_factor_init(host(d.batches[0], images), 0);
      be.finish_factor_init();
    }
    be.record_weight_steps(train::WeightSteps::record);  // group rotation
    train::RotationMeter steps;
    for (int k = 0; k < c.steps; ++k) {
      const auto s = be.train_step(host(d.batches[k], images), c.lr, k);
      out.push_back(scalar(names::step_loss(k), Quantity::loss, s.loss));
      if (!s.finite) throw NumericError(fmt::format("{}: non-finite loss or update at step {}", c.name, k));
      steps.add(s.weight_steps);
    }
    for (auto& t : tensors_after_steps(be.state(), d.params, c.steps)) out.push_back(std::move(t));
    // The mechanism metrics after the steps, through the backend interface (every group a
    // backend computes; the probe set is the first batch).
    const auto values = be.measure(host(d.batches[0], images), measure_request(c));
    for (const auto& [name, v] : values) out.push_back(scalar(names::metric(name, ""), Quantity::metric, v));
    for (const auto& [name, v] : be.measure(host(d.batches[0], images), measure_request_batch_bn(c)))
      out.push_back(scalar(names::metric(name, of_batch_bn), Quantity::metric, v));
    append_rotation_metrics(out, be, host(d.batches[0], images), steps, c, precision());
    return out;
  }
};

}  // namespace

std::unique_ptr<Side> make_reference_side(Precision p) {
  if (p == Precision::float64) return std::make_unique<ReferenceSide<double>>();
  return std::make_unique<ReferenceSide<float>>();
}

}  // namespace wdlab::xcheck

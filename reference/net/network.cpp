// The reference engine's one switch over layer kinds (forward, backward, K-FAC statistics).
#include "reference/net/network.hpp"

#include <fmt/format.h>

#include "common/bn_relu_fusion.hpp"
#include "common/errors.hpp"
#include "reference/ops/activation.hpp"
#include "reference/ops/conv2d.hpp"
#include "reference/ops/finite.hpp"
#include "reference/ops/gemm.hpp"
#include "reference/ops/loss.hpp"
#include "reference/ops/residual.hpp"
#include "reference/ops/tanh.hpp"

namespace wdlab::ref {

namespace {

/// A tensor viewed as a vector (no copy).
template <class T>
Eigen::Map<const Vec<T>> as_vec(const Mat<T>& m) {
  return Eigen::Map<const Vec<T>>(m.data(), m.size());
}

BatchNormGeometry bn_geometry(const Layer& l, int N) {
  return BatchNormGeometry{.N = N, .C = l.out.C, .HW = l.out.H * l.out.W};
}

GlobalPoolGeometry gap_geometry(const Layer& l, int N) {
  return GlobalPoolGeometry{.N = N, .C = l.in.C, .H = l.in.H, .W = l.in.W};
}

DenseGeometry dense_geometry(const Layer& l, int N) {
  return DenseGeometry{.N = N, .in = l.in.size(), .out = l.out.C};
}

}  // namespace

template <class T>
const Mat<T>& NetForward<T>::input_of(const NetworkSpec& spec, int layer, int which) const {
  const int src = spec.layers[layer].inputs[which];
  return src < 0 ? *input : out[src];
}

template <class T>
NetForward<T> network_forward(const NetworkSpec& spec, const ParamStore<T>& p, const Mat<T>& x,
                              BnMode mode) {
  NetForward<T> fw;
  network_forward(spec, p, x, mode, fw);
  return fw;
}

template <class T>
void network_forward(const NetworkSpec& spec, const ParamStore<T>& p, const Mat<T>& x, BnMode mode,
                     NetForward<T>& fw) {
  const int N = int(x.cols());
  WDLAB_CHECK(x.rows() == spec.input.size(), fmt::format("input has {} rows, the network expects {}",
                                                         x.rows(), spec.input.size()));
  const int n_layers = int(spec.layers.size());
  fw.mode = mode;
  fw.input = &x;
  fw.out.resize(n_layers);
  fw.bn.resize(n_layers);
  fw.pool.resize(n_layers);
  for (int i = 0; i < n_layers; ++i) {
    const Layer& l = spec.layers[i];
    const LayerSlots& s = p.slots[i];
    const Mat<T>& in = fw.input_of(spec, i);
    Mat<T>& y = fw.out[i];
    switch (l.kind) {
      case LayerKind::dense: {
        dense_geometry(l, N).validate();
        gemm(y, p.values[s.weight], in);  // y = W x (+ b)
        if (s.bias >= 0) y.colwise() += as_vec(p.values[s.bias]);
        break;
      }
      case LayerKind::conv2d: {
        const Vec<T> b = s.bias >= 0 ? Vec<T>(as_vec(p.values[s.bias])) : Vec<T>();
        conv2d_fprop(l.conv_geometry(N), in, p.values[s.weight], s.bias >= 0 ? &b : nullptr, y);
        break;
      }
      case LayerKind::batchnorm: {
        const Vec<T> g = s.gamma >= 0 ? Vec<T>(as_vec(p.values[s.gamma])) : Vec<T>();
        const Vec<T> b = s.beta >= 0 ? Vec<T>(as_vec(p.values[s.beta])) : Vec<T>();
        const Vec<T>* gp = s.gamma >= 0 ? &g : nullptr;
        const Vec<T>* bp = s.beta >= 0 ? &b : nullptr;
        if (mode == BnMode::train) {
          if (!fw.bn[i] || fw.bn[i]->mode != BnMode::train) fw.bn[i].emplace();
          Mat<T>* relu_out = relu_fused_into_bn(spec, i + 1) ? &fw.out[std::size_t(i + 1)] : nullptr;
          batchnorm_fprop_train(bn_geometry(l, N), in, T(l.bn_eps), gp, bp, y, *fw.bn[i], relu_out);
        } else {
          // Kept: backward through eval-mode BN (an affine map) serves the metrics' per-example
          // Jacobians (reference/net/metrics.hpp).
          fw.bn[i] = batchnorm_fprop_eval(bn_geometry(l, N), in, Vec<T>(as_vec(p.values[s.running_mean])),
                                          Vec<T>(as_vec(p.values[s.running_var])), T(l.bn_eps), gp, bp, y);
        }
        break;
      }
      case LayerKind::relu:
        if (!(mode == BnMode::train && relu_fused_into_bn(spec, i))) relu_fprop(in, y);  // else BN wrote y
        break;
      case LayerKind::maxpool:
        if (!fw.pool[i]) fw.pool[i].emplace();
        maxpool2d_fprop(l.pool_geometry(N), in, y, *fw.pool[i]);
        break;
      case LayerKind::global_avgpool: global_avgpool_fprop(gap_geometry(l, N), in, y); break;
      case LayerKind::flatten: y = in; break;  // CHW columns are already flat
      case LayerKind::residual_add: residual_fprop(in, fw.input_of(spec, i, 1), y); break;
      case LayerKind::tanh: tanh_fprop(in, y); break;
    }
  }
}

template <class T>
NetBackward<T> network_backward(const NetworkSpec& spec, const ParamStore<T>& p,
                                const NetForward<T>& fw, const Mat<T>& dlogits, InputGrad want,
                                Cotangents kept, const SkippedWeightGrads* skip) {
  NetBackward<T> bw;
  network_backward(spec, p, fw, dlogits, want, bw, kept, skip);
  return bw;
}

namespace {

/// Whether `grads` has p's tensors with their shapes (then a reusing pass overwrites it).
template <class T>
bool same_layout(const ParamStore<T>& grads, const ParamStore<T>& p) {
  if (grads.values.size() != p.values.size()) return false;
  for (std::size_t i = 0; i < p.values.size(); ++i)
    if (grads.values[i].rows() != p.values[i].rows() || grads.values[i].cols() != p.values[i].cols()) return false;
  return true;
}

}  // namespace

SkippedWeightGrads SkippedWeightGrads::all_weights(const NetworkSpec& spec) {
  SkippedWeightGrads s;
  for (const Layer& l : spec.layers) s.layer.push_back(l.has_weights() ? 1 : 0);
  return s;
}

template <class T>
void network_backward(const NetworkSpec& spec, const ParamStore<T>& p, const NetForward<T>& fw,
                      const Mat<T>& dlogits, InputGrad want, NetBackward<T>& bw, Cotangents kept,
                      const SkippedWeightGrads* skip) {
  const int n_layers = int(spec.layers.size());
  const int N = int(dlogits.cols());
  // Running statistics' entries stay zero; every trainable entry is written below (or zeroed
  // where its layer gets no cotangent).
  if (!same_layout(bw.grads, p)) bw.grads = p.zeros_like();
  bw.d_out.resize(std::size_t(n_layers));
  bw.reached.assign(std::size_t(n_layers), 0);
  bw.input_reached = false;
  bw.d_out.back() = dlogits;
  bw.reached.back() = 1;
  // The cotangent of the output of layer `src` (or of the input, src < 0). Fan-out sums: the
  // first cotangent to arrive is written straight into its slot, later ones go to bw.fan_in and
  // are added (the same additions in the same order as moving the first in and adding the rest).
  auto slot = [&](int src) -> Mat<T>& { return src < 0 ? bw.d_input : bw.d_out[std::size_t(src)]; };
  auto reached = [&](int src) -> bool { return src < 0 ? bw.input_reached : bw.reached[std::size_t(src)] != 0; };
  auto dest = [&](int src) -> Mat<T>& { return reached(src) ? bw.fan_in : slot(src); };
  auto arrived = [&](int src, const Mat<T>& d) {
    if (&d == &bw.fan_in) slot(src) += d;
    if (src < 0) bw.input_reached = true;
    else bw.reached[std::size_t(src)] = 1;
  };
  auto arrived_moved = [&](int src, Mat<T>&& d) {
    if (reached(src)) slot(src) += d;
    else slot(src) = std::move(d);
    arrived(src, slot(src));
  };
  // A ReLU whose backward BN does (relu_backward_fused): BN reads the ReLU's cotangent and output.
  auto fused_relu = [&](int relu) { return kept == Cotangents::needed && relu_backward_fused(spec, relu); };
  for (int i = n_layers - 1; i >= 0; --i) {
    const Layer& l = spec.layers[i];
    const LayerSlots& s = p.slots[i];
    if (!bw.reached[std::size_t(i)]) {  // output unused downstream: no gradient
      for (const int t : {s.weight, s.bias, s.gamma, s.beta})
        if (t >= 0) bw.grads.values[std::size_t(t)].setZero();
      continue;
    }
    const Mat<T>& dy = bw.d_out[std::size_t(i)];
    const Mat<T>& in = fw.input_of(spec, i);
    const int src = l.inputs[0];
    Mat<T>& dx = dest(src);
    bool wrote_dx = true;
    const bool form_grads = !(skip && skip->skipped(i));
    switch (l.kind) {
      case LayerKind::dense: {
        if (form_grads) {
          gemm(bw.grads.values[s.weight], dy, in.transpose());  // dW = dy xᵀ
          if (s.bias >= 0) bw.grads.values[s.bias] = dy.rowwise().sum();
        }
        wrote_dx = src >= 0 || want == InputGrad::compute;
        if (wrote_dx) gemm(dx, p.values[s.weight].transpose(), dy);  // dx = Wᵀ dy
        break;
      }
      case LayerKind::conv2d: {
        const Conv2dGeometry g = l.conv_geometry(N);
        // The first layer's input gradient is work no optimizer needs; skipped unless asked.
        wrote_dx = src >= 0 || want == InputGrad::compute;
        if (!form_grads) {
          if (wrote_dx) conv2d_bprop_data(g, dy, p.values[s.weight], dx);
          break;
        }
        Vec<T> db;
        if (s.bias >= 0) db.resize(l.out.C);
        conv2d_bprop(g, in, dy, p.values[s.weight], bw.grads.values[s.weight], s.bias >= 0 ? &db : nullptr,
                     wrote_dx ? &dx : nullptr);
        if (s.bias >= 0) bw.grads.values[s.bias] = db;
        break;
      }
      case LayerKind::batchnorm: {
        WDLAB_CHECK(fw.bn[i].has_value(), "backward through BN needs its forward context");
        const Vec<T> g = s.gamma >= 0 ? Vec<T>(as_vec(p.values[s.gamma])) : Vec<T>();
        Vec<T> dg, dbeta;
        if (s.gamma >= 0) {
          dg.resize(l.out.C);
          dbeta.resize(l.out.C);
        }
        const bool fused = fused_relu(i + 1);
        const Mat<T>& dr = fused ? bw.d_out[std::size_t(i + 1)] : dy;
        batchnorm_bprop(bn_geometry(l, N), *fw.bn[i], dr, s.gamma >= 0 ? &g : nullptr, dx,
                        s.gamma >= 0 ? &dg : nullptr, s.beta >= 0 ? &dbeta : nullptr,
                        fused ? &fw.out[std::size_t(i + 1)] : nullptr);
        if (s.gamma >= 0) bw.grads.values[s.gamma] = dg;
        if (s.beta >= 0) bw.grads.values[s.beta] = dbeta;
        break;
      }
      case LayerKind::relu:
        if (fused_relu(i)) {  // BN, next, applies the mask; its own cotangent is never stored
          bw.d_out[std::size_t(src)].resize(0, 0);
          bw.reached[std::size_t(src)] = 1;
          wrote_dx = false;
        } else {
          relu_bprop(in, dy, dx);
        }
        break;
      case LayerKind::maxpool: maxpool2d_bprop(l.pool_geometry(N), *fw.pool[i], dy, dx); break;
      case LayerKind::global_avgpool: global_avgpool_bprop(gap_geometry(l, N), dy, dx); break;
      case LayerKind::flatten: dx = dy; break;
      case LayerKind::residual_add: {
        // Two cotangents, the second input's first (the order of the sums as before).
        Mat<T> da, db;
        residual_bprop(dy, da, db);
        arrived_moved(l.inputs[1], std::move(db));
        arrived_moved(src, std::move(da));
        wrote_dx = false;
        break;
      }
      case LayerKind::tanh: tanh_bprop(fw.out[i], dy, dx); break;
    }
    if (wrote_dx) arrived(src, dx);
  }
  if (!bw.input_reached) bw.d_input.setZero(spec.input.size(), N);
}

template <class T>
int first_nonfinite_gradient(const NetworkSpec& spec, const ParamStore<T>& p, const NetForward<T>& fw,
                             const NetBackward<T>& bw, const SkippedWeightGrads* skip) {
  // Spans in ParamStore order, each labelled with its tensor, so the tensor named is the one a
  // check of formed gradients would name. A skipped layer's factors are read once, for its weight,
  // which comes before its bias: db = D 1 is non-finite only where D is, and then so is dW.
  std::vector<Span<T>> spans;
  std::vector<int> tensor;
  for (int t = 0; t < int(p.values.size()); ++t) {
    const ParamInfo& info = p.info[std::size_t(t)];
    if (!info.trainable()) continue;
    const int l = info.layer;
    if (skip && skip->skipped(l)) {
      if (info.role != ParamRole::weight) continue;
      for (const Mat<T>* m : {&bw.d_out[std::size_t(l)], &fw.input_of(spec, l)}) {
        spans.push_back(Span<T>{m->data(), m->size()});
        tensor.push_back(t);
      }
    } else {
      const Mat<T>& g = bw.grads.values[std::size_t(t)];
      spans.push_back(Span<T>{g.data(), g.size()});
      tensor.push_back(t);
    }
  }
  const int k = first_nonfinite(spans);
  return k < 0 ? -1 : tensor[std::size_t(k)];
}

template <class T>
void update_running_stats(const NetworkSpec& spec, ParamStore<T>& p, const NetForward<T>& fw) {
  WDLAB_CHECK(fw.mode == BnMode::train, "running statistics come from train-mode passes");
  for (int i = 0; i < int(spec.layers.size()); ++i) {
    if (spec.layers[i].kind != LayerKind::batchnorm) continue;
    const LayerSlots& s = p.slots[i];
    Vec<T> mean = as_vec(p.values[s.running_mean]), var = as_vec(p.values[s.running_var]);
    batchnorm_update_running(mean, var, *fw.bn[i], T(spec.layers[i].bn_momentum));
    p.values[s.running_mean] = mean;
    p.values[s.running_var] = var;
  }
}

template <class T>
std::vector<FactorStats<T>> kfac_statistics(const NetworkSpec& spec, const ParamStore<T>& p,
                                            const Mat<T>& x, CurvatureKind kind,
                                            double probe_variance, std::uint64_t seed,
                                            std::uint64_t step) {
  const auto fw = network_forward(spec, p, x, BnMode::train);
  const Eigen::Index K = spec.classes, N = x.cols();
  // Cotangent of the summed surrogate loss at the logits: K-FAC-F backpropagates p − e_ŷ with
  // ŷ ~ p(y|x); K-FAC-G a Gaussian probe with covariance probe_variance·I (MATH.md §9.4).
  Mat<T> v;
  if (kind == CurvatureKind::fisher) {
    v = softmax_fprop<T>(fw.logits());
    const Eigen::VectorXi y = sample_categorical_targets<T>(v, seed, step);
    for (Eigen::Index n = 0; n < N; ++n) v(y(n), n) -= T(1);
  } else {
    v = gaussian_probes<T>(int(K), int(N), probe_variance, seed, step);
  }
  // The statistics read cotangents and inputs only: no weight gradient is formed.
  const SkippedWeightGrads no_grads = SkippedWeightGrads::all_weights(spec);
  const auto bw = network_backward(spec, p, fw, v, InputGrad::skip, Cotangents::needed, &no_grads);
  std::vector<FactorStats<T>> out;
  for (int i = 0; i < int(spec.layers.size()); ++i) {
    const Layer& l = spec.layers[i];
    if (!l.has_weights()) continue;
    const Mat<T>& in = fw.input_of(spec, i);
    const Mat<T>& g = bw.d_out[i];
    FactorStats<T> f;
    f.layer = i;
    if (l.kind == LayerKind::dense) {
      Mat<T> a = in;
      if (l.bias == Bias::on) {  // homogeneous coordinate
        a.conservativeResize(a.rows() + 1, Eigen::NoChange);
        a.row(a.rows() - 1).setOnes();
      }
      gemm(f.A, a, a.transpose());
      f.A /= T(N);
      gemm(f.S, g, g.transpose());
      f.S /= T(N);
    } else {
      const Conv2dGeometry geom = l.conv_geometry(int(N));
      f.A = conv2d_kfc_input_factor(geom, in, l.bias == Bias::on ? Homogeneous::on : Homogeneous::off);
      f.S = conv2d_kfc_output_factor(geom, g);
      f.locations = geom.locations();
    }
    out.push_back(std::move(f));
  }
  return out;
}

#define WDLAB_INSTANTIATE(T)                                                                    \
  template struct NetForward<T>;                                                                \
  template NetForward<T> network_forward<T>(const NetworkSpec&, const ParamStore<T>&,           \
                                            const Mat<T>&, BnMode);                             \
  template void network_forward<T>(const NetworkSpec&, const ParamStore<T>&, const Mat<T>&,    \
                                    BnMode, NetForward<T>&);                                    \
  template void network_backward<T>(const NetworkSpec&, const ParamStore<T>&, const NetForward<T>&, \
                                    const Mat<T>&, InputGrad, NetBackward<T>&, Cotangents,      \
                                    const SkippedWeightGrads*);                                 \
  template NetBackward<T> network_backward<T>(const NetworkSpec&, const ParamStore<T>&,         \
                                              const NetForward<T>&, const Mat<T>&, InputGrad,   \
                                              Cotangents, const SkippedWeightGrads*);           \
  template int first_nonfinite_gradient<T>(const NetworkSpec&, const ParamStore<T>&,            \
                                           const NetForward<T>&, const NetBackward<T>&,         \
                                           const SkippedWeightGrads*);                          \
  template void update_running_stats<T>(const NetworkSpec&, ParamStore<T>&, const NetForward<T>&); \
  template std::vector<FactorStats<T>> kfac_statistics<T>(const NetworkSpec&, const ParamStore<T>&, \
                                                          const Mat<T>&, CurvatureKind, double,  \
                                                          std::uint64_t, std::uint64_t);
WDLAB_INSTANTIATE(double)
WDLAB_INSTANTIATE(float)
#undef WDLAB_INSTANTIATE

}  // namespace wdlab::ref

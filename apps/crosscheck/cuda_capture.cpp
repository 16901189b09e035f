#include "apps/crosscheck/cuda_capture.hpp"

#include <cmath>

#include <Eigen/Dense>
#include <fmt/format.h>

#include "apps/crosscheck/side.hpp"
#include "apps/crosscheck/tensor_names.hpp"
#include "common/errors.hpp"

namespace wdlab::xcheck::cuda_side {

namespace {

template <class T>
std::vector<double> widen(const std::vector<T>& v) {
  return std::vector<double>(v.begin(), v.end());
}

/// A flat device buffer as a tensor of `shape`; a size mismatch is a bug of the capture, never
/// reshaped away.
template <class T>
Tensor tensor(std::string name, Quantity q, std::vector<std::int64_t> shape, const std::vector<T>& v) {
  std::int64_t n = 1;
  for (auto s : shape) n *= s;
  if (std::int64_t(v.size()) != n)
    throw InternalError(fmt::format("cuda capture: {} has {} values, shape {} needs {}", name, v.size(),
                                    shape_string(shape), n));
  return Tensor{std::move(name), q, std::move(shape), widen(v), ""};
}

std::vector<std::int64_t> nchw(int N, const Shape& s) { return {N, s.C, s.H, s.W}; }

/// ‖(Σ_{n,t} |dy_{n,k,t}|)_k‖ of an NCHW cotangent: the scale of a bias gradient (tensors.hpp).
double bias_scale(const std::vector<float>& dy, int N, int K) {
  const std::size_t T = dy.size() / (std::size_t(N) * std::size_t(K));
  double s2 = 0;
  for (int k = 0; k < K; ++k) {
    double s = 0;
    for (int n = 0; n < N; ++n)
      for (std::size_t t = 0; t < T; ++t) s += std::abs(double(dy[(std::size_t(n) * K + k) * T + t]));
    s2 += s * s;
  }
  return std::sqrt(s2);
}

/// The cuDNN choices of one conv layer's geometry (AlgoCache::describe lines start with it).
std::string conv_algorithms(const Layer& l, int N, const std::vector<std::string>& all) {
  if (l.kind != LayerKind::conv2d) return "";
  const Conv2dGeometry g = l.conv_geometry(N);
  const std::string key = fmt::format("N={} C={} H={} W={} K={} R={} S={} pad={} stride={}:", g.N, g.C, g.H, g.W,
                                      g.K, g.R, g.S, g.pad, g.stride);
  std::string out;
  for (const auto& a : all)
    if (a.rfind(key, 0) == 0) out += (out.empty() ? "cudnn " : "; ") + a.substr(key.size() + 1);
  return out;
}

void append_grads(Tensors& out, const Case& c, const cuda::Capture& cap) {
  const auto info = c.spec.params();
  if (cap.grads.size() != info.size()) throw InternalError("cuda capture: one gradient slot per parameter expected");
  for (std::size_t i = 0; i < info.size(); ++i) {
    if (!info[i].trainable()) continue;
    Tensor t = tensor(names::grad(info[i].name), Quantity::param_grad, info[i].shape, cap.grads[i]);
    const Layer& l = c.spec.layers[std::size_t(info[i].layer)];
    const auto& dy = cap.dout.at(std::size_t(info[i].layer));
    if (info[i].role == ParamRole::bias && !dy.empty()) t.scale = bias_scale(dy, cap.n, l.out.C);
    if (info[i].role == ParamRole::weight) t.note = conv_algorithms(l, cap.n, cap.algorithms);
    out.push_back(std::move(t));
  }
}

/// Batch statistics, running statistics after one update, eval-mode outputs (append_bn).
void append_bn(Tensors& out, const Case& c, const cuda::Capture& cap) {
  const NetworkSpec& spec = c.spec;
  for (int i = 0; i < int(spec.layers.size()); ++i) {
    if (spec.layers[std::size_t(i)].kind != LayerKind::batchnorm) continue;
    const std::string tag = names::layer_tag(spec, i);
    const std::int64_t C = spec.layers[std::size_t(i)].out.C;
    out.push_back(tensor(names::bn_stat("mean", tag), Quantity::bn_statistic, {C}, cap.bn_mean.at(std::size_t(i))));
    out.push_back(tensor(names::bn_stat("var", tag), Quantity::bn_statistic, {C}, cap.bn_var.at(std::size_t(i))));
  }
  const auto info = spec.params();
  for (std::size_t i = 0; i < info.size(); ++i)
    if (!info[i].trainable())
      out.push_back(tensor(names::running(info[i].name), Quantity::bn_statistic, info[i].shape, cap.running.at(i)));
  for (int i = 0; i < int(spec.layers.size()); ++i) {
    const Layer& l = spec.layers[std::size_t(i)];
    if (l.kind == LayerKind::batchnorm)
      out.push_back(tensor(names::bn_eval_output(names::layer_tag(spec, i)), Quantity::bn_output, nchw(cap.n, l.out),
                           cap.bn_eval_out.at(std::size_t(i))));
  }
}

/// An n×n column-major device matrix as a row-major tensor: t[r·n + c] = m[c·n + r]. The
/// factors are symmetric only up to rounding, so the order is kept rather than assumed away.
Tensor square(std::string name, Quantity q, int n, const std::vector<float>& m) {
  Tensor t = tensor(std::move(name), q, {n, n}, m);
  for (int r = 0; r < n; ++r)
    for (int col = 0; col < n; ++col) t.data[std::size_t(r) * std::size_t(n) + std::size_t(col)] =
        double(m[std::size_t(col) * std::size_t(n) + std::size_t(r)]);
  return t;
}

/// The block's layout must be the spec's: dense/conv layers in order, their weight and bias.
void check_blocks(const Case& c, const std::vector<cuda::KfacBlockCapture>& blocks, const char* what) {
  const auto info = c.spec.params();
  std::size_t b = 0;
  for (int i = 0; i < int(c.spec.layers.size()); ++i) {
    const Layer& l = c.spec.layers[std::size_t(i)];
    if (!l.has_weights()) continue;
    if (b >= blocks.size() || blocks[b].layer != i)
      throw InternalError(fmt::format("cuda capture of '{}': {} has no block for layer {}", c.name, what, i));
    const cuda::KfacBlockCapture& k = blocks[b];
    const bool bias = l.bias == Bias::on;
    if (k.w < 0 || std::size_t(k.w) >= info.size() || info[std::size_t(k.w)].layer != i ||
        info[std::size_t(k.w)].role != ParamRole::weight || (k.b >= 0) != bias ||
        (bias && (std::size_t(k.b) >= info.size() || info[std::size_t(k.b)].role != ParamRole::bias)))
      throw InternalError(fmt::format("cuda capture of '{}': {} block of layer {} names the wrong tensors", c.name,
                                      what, i));
    ++b;
  }
  if (b != blocks.size()) throw InternalError(fmt::format("cuda capture of '{}': {} has extra blocks", c.name, what));
}

using MatD = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic>;

MatD column_major(int rows, int cols, const std::vector<float>& v) {
  return Eigen::Map<const Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic>>(v.data(), rows, cols).cast<double>();
}

/// The K-FAC tensors of one curvature (append_curvature of the reference side): factors,
/// damped inverses, preconditioned updates, T·tr(A)·tr(S) per block and, for K-FAC-G,
/// Σ_l T·tr(S W̄ A W̄ᵀ) with W̄ = [W b] the parameters the pass ran with. Both metrics are
/// computed here, in double, from the downloaded float factors, as the reference side computes
/// them from its own.
void append_kfac(Tensors& out, const Case& c, const cuda::Capture& cap, const std::string& est,
                 const std::vector<cuda::KfacBlockCapture>& blocks) {
  check_blocks(c, blocks, est.c_str());
  const auto info = c.spec.params();
  double gn_quadratic = 0;
  for (const auto& k : blocks) {
    const Layer& l = c.spec.layers[std::size_t(k.layer)];
    const int a = k.a_dim();
    out.push_back(square(names::factor(est, 'A', l.name), Quantity::kfac_factor, a, k.A));
    out.push_back(square(names::factor(est, 'S', l.name), Quantity::kfac_factor, k.out, k.S));
    out.push_back(square(names::inverse(est, 'A', l.name), Quantity::damped_inverse, a, k.A_inv));
    out.push_back(square(names::inverse(est, 'S', l.name), Quantity::damped_inverse, k.out, k.S_inv));
    const ParamInfo& w = info[std::size_t(k.w)];
    out.push_back(tensor(names::update(est, w.name), Quantity::preconditioned, w.shape, k.update_w));
    if (k.b >= 0)
      out.push_back(tensor(names::update(est, info[std::size_t(k.b)].name), Quantity::preconditioned,
                           info[std::size_t(k.b)].shape, k.update_b));
    const MatD A = column_major(a, a, k.A), S = column_major(k.out, k.out, k.S);
    out.push_back(Tensor{names::metric(est + "_trace", l.name), Quantity::metric, {1},
                         {double(k.locations) * A.trace() * S.trace()}, ""});
    if (est != "kfac_g") continue;
    if (cap.params.size() != info.size())
      throw InternalError(fmt::format("cuda capture of '{}': no parameters for kfac_gn_quadratic", c.name));
    // W̄ is out × a: the PyTorch-order weight is row-major out × in, the bias the last column.
    const auto& wv = cap.params[std::size_t(k.w)];
    if (wv.size() != std::size_t(k.out) * std::size_t(k.in))
      throw InternalError(fmt::format("cuda capture of '{}': {} has {} values", c.name, w.name, wv.size()));
    MatD W(k.out, a);
    for (int o = 0; o < k.out; ++o)
      for (int j = 0; j < k.in; ++j) W(o, j) = double(wv[std::size_t(o) * std::size_t(k.in) + std::size_t(j)]);
    if (k.b >= 0) {
      const auto& bv = cap.params[std::size_t(k.b)];
      if (bv.size() != std::size_t(k.out)) throw InternalError("cuda capture: bias of the wrong size");
      for (int o = 0; o < k.out; ++o) W(o, k.in) = double(bv[std::size_t(o)]);
    }
    gn_quadratic += double(k.locations) * (S * W * A * W.transpose()).trace();
  }
  if (est == "kfac_g")
    out.push_back(Tensor{names::metric("kfac_gn_quadratic", ""), Quantity::metric, {1}, {gn_quadratic}, ""});
}

void check_layers(const Case& c, const cuda::Capture& cap) {
  const std::size_t L = c.spec.layers.size();
  if (cap.n != c.batch || cap.out.size() != L || cap.dout.size() != L || cap.bn_mean.size() != L ||
      cap.bn_var.size() != L || cap.bn_eval_out.size() != L)
    throw InternalError(fmt::format("cuda capture of '{}': batch {} and {} layer slots, expected {} and {}", c.name,
                                    cap.n, cap.out.size(), c.batch, L));
}

}  // namespace

std::string unsupported(const Case& c) {
  // Exact mode runs on the float32 path: every integer sum of an exact case is below 2^24
  // (integer_sum_bound; wdlab crosscheck refuses a case above it for float32 sides), so each
  // result is exact in any summation order; cuDNN under AlgoPolicy::exact (side_cuda.cpp).
  (void)c;
  return "";
}

std::string why_missing(const Case& c, const std::string& tensor, Quantity q) {
  (void)tensor;
  if (c.kind == CaseKind::optimizer && q == Quantity::metric)
    return "the CUDA backend's measure() did not return this metric";
  return "";
}

std::vector<std::string> coverage() {
  return {
      "side cuda layer cases:     forward output, input and parameter gradients, BN batch/running statistics and "
      "eval output (Capturer::capture, train pass, deterministic cuDNN algorithms); dense/conv K-FAC factors "
      "A and S of the given cotangent (Capturer::capture_kfac)",
      "side cuda loss cases:      loss, softmax, output gradient (the backend's loss kernels)",
      "side cuda network cases:   every layer's output and cotangent, loss, input and parameter gradients, BN "
      "statistics, norm/elr from the backend's measure() (damping_eff: optimizer cases)",
      "side cuda network cases:   K-FAC-F (same sampled targets) and K-FAC-G (same probes) per dense/conv block: "
      "factors A and S, damped inverses, preconditioned gradients (Capturer::capture_kfac: CudaKfac's syrk, "
      "cuSOLVER and GEMMs, the case's seed, RNG step 0, damping 1e-2); kfac_*_trace and kfac_gn_quadratic computed "
      "on the host from the downloaded factors and parameters",
      "side cuda optimizer cases: N train steps through train::Backend (an optimizer the backend refuses: UNSUPPORTED)",
      "side cuda exact mode:      the integer layer cases on the float32 path, bit for bit (every sum below "
      "2^24; cuDNN restricted to deterministic transform-free algorithms; K-FAC factors, divided by N*T, at "
      "the float tolerance)",
  };
}

cuda::CaptureRequest request(const Case& c, const CaseData& d, std::vector<float>& images,
                             std::vector<float>& cotangent) {
  if (c.kind != CaseKind::layer && c.kind != CaseKind::network)
    throw InternalError("cuda capture: only layer and network cases have a capture request");
  const Batch& b = d.batches.at(0);
  images.assign(b.x.begin(), b.x.end());
  cotangent.assign(d.cotangent.begin(), d.cotangent.end());  // empty for network cases
  cuda::CaptureRequest r;
  r.images = images;
  r.labels = b.labels;
  r.n = c.batch;
  r.cotangent = cotangent;
  r.pass = cuda::CapturePass::train;
  return r;
}

Tensors layer_tensors(const Case& c, const cuda::Capture& cap) {
  check_layers(c, cap);
  const NetworkSpec& spec = c.spec;
  const Layer& l = spec.layers[0];
  Tensors out;
  Tensor y = tensor(names::layer_output(), output_quantity(l.kind), nchw(cap.n, l.out), cap.out[0]);
  y.note = conv_algorithms(l, cap.n, cap.algorithms);
  out.push_back(std::move(y));
  out.push_back(tensor(names::input_grad(), Quantity::activation_grad, nchw(cap.n, spec.input), cap.dinput));
  append_grads(out, c, cap);
  if (l.kind == LayerKind::dense || l.kind == LayerKind::conv2d) {
    check_blocks(c, cap.kfac_given, "the given cotangent's factors");
    const auto& k = cap.kfac_given.at(0);
    out.push_back(square(names::layer_factor('A'), Quantity::kfac_factor, k.a_dim(), k.A));
    out.push_back(square(names::layer_factor('S'), Quantity::kfac_factor, k.out, k.S));
  } else if (l.kind == LayerKind::batchnorm) {
    append_bn(out, c, cap);
  }
  return out;
}

Tensors network_tensors(const Case& c, const cuda::Capture& cap,
                        const std::vector<std::pair<std::string, double>>& weight_metrics) {
  check_layers(c, cap);
  const NetworkSpec& spec = c.spec;
  Tensors out;
  for (int i = 0; i < int(spec.layers.size()); ++i) {
    const Layer& l = spec.layers[std::size_t(i)];
    if (l.kind == LayerKind::flatten) continue;  // a copy: the next layer's input shows it
    Tensor t = tensor(names::forward(spec, i), output_quantity(l.kind), nchw(cap.n, l.out), cap.out[std::size_t(i)]);
    t.note = conv_algorithms(l, cap.n, cap.algorithms);
    out.push_back(std::move(t));
  }
  out.push_back(Tensor{names::loss(), Quantity::loss, {1}, {cap.loss}, ""});
  for (int i = 0; i < int(spec.layers.size()); ++i)
    if (spec.layers[std::size_t(i)].kind != LayerKind::flatten && !cap.dout[std::size_t(i)].empty())
      out.push_back(tensor(names::backward(spec, i), Quantity::activation_grad, nchw(cap.n, spec.layers[std::size_t(i)].out),
                           cap.dout[std::size_t(i)]));
  out.push_back(tensor(names::input_grad(), Quantity::activation_grad, nchw(cap.n, spec.input), cap.dinput));
  append_grads(out, c, cap);
  // ‖θ_l‖ and η/‖θ_l‖² as the CUDA backend's measure() returned them (side.hpp).
  xcheck::append_weight_metrics(out, weight_metrics);
  append_kfac(out, c, cap, "kfac_f", cap.kfac_fisher);
  append_kfac(out, c, cap, "kfac_g", cap.kfac_gauss_newton);
  append_bn(out, c, cap);
  return out;
}

Tensors loss_tensors(const Case& c, const cuda::LossCapture& cap) {
  const std::vector<std::int64_t> nk{c.batch, c.loss_classes};
  Tensors out;
  out.push_back(Tensor{names::loss(), Quantity::loss, {1}, {cap.loss}, ""});
  if (c.loss == LossKind::softmax_cross_entropy)
    out.push_back(tensor(names::loss_probs(), Quantity::activation, nk, cap.probs));
  out.push_back(tensor(names::loss_grad(), Quantity::activation_grad, nk, cap.grad));
  return out;
}

}  // namespace wdlab::xcheck::cuda_side

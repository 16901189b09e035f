#include "apps/crosscheck/cuda_capture.hpp"

#include <cmath>

#include <fmt/format.h>

#include "apps/crosscheck/tensor_names.hpp"
#include "common/errors.hpp"

namespace wdlab::xcheck::cuda_side {

namespace {

// One table of what the CUDA side leaves out, read by why_missing and coverage alike.
constexpr const char* kNoKfac =
    "no K-FAC in the CUDA capture yet (factors, damped inverses, preconditioned gradients and the "
    "K-FAC metrics come with cuda/kfac.*)";
constexpr const char* kNoExact =
    "the CUDA backend computes in float32 only: the bit-for-bit exact mode needs a double CUDA path, "
    "which does not exist (exact mode compares --a reference-double --b direct)";

bool kfac_quantity(const std::string& tensor, Quantity q) {
  return q == Quantity::kfac_factor || q == Quantity::damped_inverse || q == Quantity::preconditioned ||
         (q == Quantity::metric && tensor.find("kfac_") != std::string::npos);
}

Quantity output_quantity(LayerKind k) {
  switch (k) {
    case LayerKind::dense:
    case LayerKind::conv2d: return Quantity::preactivation;
    case LayerKind::batchnorm: return Quantity::bn_output;
    default: return Quantity::activation;
  }
}

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

void check_layers(const Case& c, const cuda::Capture& cap) {
  const std::size_t L = c.spec.layers.size();
  if (cap.n != c.batch || cap.out.size() != L || cap.dout.size() != L || cap.bn_mean.size() != L ||
      cap.bn_var.size() != L || cap.bn_eval_out.size() != L)
    throw InternalError(fmt::format("cuda capture of '{}': batch {} and {} layer slots, expected {} and {}", c.name,
                                    cap.n, cap.out.size(), c.batch, L));
}

}  // namespace

std::string unsupported(const Case& c) {
  if (c.input == InputKind::small_integer) return kNoExact;
  return "";
}

std::string why_missing(const Case& c, const std::string& tensor, Quantity q) {
  if ((c.kind == CaseKind::layer || c.kind == CaseKind::network) && kfac_quantity(tensor, q)) return kNoKfac;
  if (c.kind == CaseKind::optimizer && q == Quantity::metric)
    return "the CUDA backend's measure() did not return this metric";
  return "";
}

std::vector<std::string> coverage() {
  return {
      "side cuda layer cases:     forward output, input and parameter gradients, BN batch/running statistics and "
      "eval output (CudaBackend::capture, train pass, deterministic cuDNN algorithms)",
      "side cuda loss cases:      loss, softmax, output gradient (the backend's loss kernels)",
      "side cuda network cases:   every layer's output and cotangent, loss, input and parameter gradients, BN "
      "statistics, norm/elr/eff_damping from the device's weight norms",
      "side cuda optimizer cases: N train steps through train::Backend (an optimizer the backend refuses: UNSUPPORTED)",
      fmt::format("side cuda kfac_factor, damped_inverse, preconditioned, metric kfac_*: NOT COMPARED, reported "
                  "MISSING: {}",
                  kNoKfac),
      fmt::format("side cuda exact mode: NO CASE: {}", kNoExact),
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
  if (l.kind == LayerKind::batchnorm) append_bn(out, c, cap);
  return out;
}

Tensors network_tensors(const Case& c, const cuda::Capture& cap,
                        const std::vector<std::pair<std::string, double>>& weight_norms) {
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
  // ‖θ_l‖ as the device reduced it; η/‖θ_l‖² and λ‖θ_l‖² follow from it as in append_metrics.
  const double lambda = crosscheck_optim(ref::OptimizerKind::kfac_f).kfac.damping;
  const auto info = spec.params();
  for (const auto& [name, norm] : weight_norms) {
    const ParamInfo* p = nullptr;
    for (const auto& x : info)
      if (x.name == name) p = &x;
    if (!p) throw InternalError("cuda capture: weight norm of an unknown tensor " + name);
    out.push_back(Tensor{names::metric("norm", name), Quantity::metric, {1}, {norm}, ""});
    out.push_back(Tensor{names::metric("elr", name), Quantity::metric, {1}, {c.lr / (norm * norm)}, ""});
    if (spec.followed_by_bn(p->layer))
      out.push_back(Tensor{names::metric("eff_damping", name), Quantity::metric, {1}, {lambda * norm * norm}, ""});
  }
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

// The host half of the CUDA side (apps/crosscheck/cuda_capture.hpp) without a GPU: a capture
// filled the way CudaBackend::capture fills it (flat buffers in the device's orders: NCHW
// activations, PyTorch-order gradients, double BN statistics), but computed by the float
// reference engine, must convert into exactly the reference side's tensors for every layer,
// loss and network case: the same names, quantities and shapes, values within the float32
// tolerances, and nothing more than the K-FAC quantities missing, each with its reason. Negative
// controls: buffers in another order (CHWN activations, the engine's internal weight order)
// fail, a buffer of the wrong size is refused, and a tensor only one side has is MISSING
// whichever side it is on.
#include <doctest/doctest.h>

#include <set>

#include <fmt/format.h>

#include "apps/crosscheck/case_data.hpp"
#include "apps/crosscheck/cases.hpp"
#include "apps/crosscheck/cuda_capture.hpp"
#include "apps/crosscheck/report.hpp"
#include "apps/crosscheck/side.hpp"
#include "common/errors.hpp"
#include "reference/net/network.hpp"
#include "reference/net/params.hpp"
#include "reference/ops/loss.hpp"

using namespace wdlab;
using namespace wdlab::xcheck;
using ref::Mat;

namespace {

/// How the fake device lays out what it hands back. `device` is CudaBackend's order; the others
/// are the mistakes a capture could make.
enum class Layout { device, chwn_activations, internal_weight_order };

std::vector<float> flat(const Mat<float>& m) { return std::vector<float>(m.data(), m.data() + m.size()); }

/// (C·H·W)×N column-per-example → the same numbers with the example index fastest.
std::vector<float> chwn(const Mat<float>& m) {
  std::vector<float> v;
  for (Eigen::Index r = 0; r < m.rows(); ++r)
    for (Eigen::Index c = 0; c < m.cols(); ++c) v.push_back(m(r, c));
  return v;
}

/// A capture of a layer or network case as the device would return it, from the float engine.
cuda::Capture fake_capture(const Case& c, const CaseData& d, Layout layout,
                           std::vector<std::pair<std::string, double>>* norms = nullptr) {
  const NetworkSpec& spec = c.spec;
  const int N = c.batch;
  auto p = ref::ParamStore<float>::zeros(spec);
  for (std::size_t i = 0; i < p.info.size(); ++i) {
    const std::vector<float> v(d.params[i].data.begin(), d.params[i].data.end());
    p.values[i] = ref::from_pytorch_order<float>(p.info[i], v);
  }
  const Mat<float> x = Eigen::Map<const Mat<double>>(d.batches[0].x.data(), spec.input.size(), N).cast<float>();
  const auto fw = ref::network_forward(spec, p, x, ref::BnMode::train);
  cuda::Capture cap;
  cap.n = N;
  Mat<float> dy;
  if (c.kind == CaseKind::layer) {
    dy = Eigen::Map<const Mat<double>>(d.cotangent.data(), spec.layers.back().out.size(), N).cast<float>();
  } else {
    const Eigen::VectorXi y = Eigen::Map<const Eigen::VectorXi>(d.batches[0].labels.data(), N);
    const auto ce = ref::softmax_cross_entropy<float>(fw.logits(), y);
    cap.loss = double(ce.loss);
    dy = ce.dlogits;
  }
  const auto bw = ref::network_backward(spec, p, fw, dy, ref::InputGrad::compute);
  const std::size_t L = spec.layers.size();
  cap.out.resize(L);
  cap.dout.resize(L);
  cap.bn_mean.resize(L);
  cap.bn_var.resize(L);
  cap.bn_eval_out.resize(L);
  for (std::size_t i = 0; i < L; ++i) {
    cap.out[i] = layout == Layout::chwn_activations ? chwn(fw.out[i]) : flat(fw.out[i]);
    if (bw.d_out[i].size() > 0) cap.dout[i] = flat(bw.d_out[i]);
    if (fw.bn[i]) {
      cap.bn_mean[i].assign(fw.bn[i]->mean.data(), fw.bn[i]->mean.data() + fw.bn[i]->mean.size());
      cap.bn_var[i].assign(fw.bn[i]->var.data(), fw.bn[i]->var.data() + fw.bn[i]->var.size());
    }
  }
  cap.dinput = flat(bw.d_input);
  cap.grads.resize(p.info.size());
  cap.running.resize(p.info.size());
  for (std::size_t i = 0; i < p.info.size(); ++i) {
    if (!p.info[i].trainable()) continue;
    cap.grads[i] = layout == Layout::internal_weight_order ? flat(bw.grads.values[i])
                                                           : ref::to_pytorch_order(p.info[i], bw.grads.values[i]);
    if (norms && p.info[i].role == ParamRole::weight)
      norms->emplace_back(p.info[i].name, double(p.values[i].norm()));
  }
  ref::update_running_stats(spec, p, fw);
  for (std::size_t i = 0; i < p.info.size(); ++i)
    if (!p.info[i].trainable()) cap.running[i] = ref::to_pytorch_order(p.info[i], p.values[i]);
  const auto ev = ref::network_forward(spec, p, x, ref::BnMode::eval);
  for (std::size_t i = 0; i < L; ++i)
    if (spec.layers[i].kind == LayerKind::batchnorm) cap.bn_eval_out[i] = flat(ev.out[i]);
  cap.algorithms = {"N=1 C=1 H=1 W=1 K=1 R=1 S=1 pad=0 stride=1: fprop algo 0 (deterministic, 0.0 MiB workspace)"};
  return cap;
}

cuda::LossCapture fake_loss(const Case& c, const CaseData& d) {
  const Mat<float> z = Eigen::Map<const Mat<double>>(d.outputs.data(), c.loss_classes, c.batch).cast<float>();
  cuda::LossCapture cap;
  if (c.loss == LossKind::softmax_cross_entropy) {
    const Eigen::VectorXi y = Eigen::Map<const Eigen::VectorXi>(d.batches[0].labels.data(), c.batch);
    const auto ce = ref::softmax_cross_entropy<float>(z, y);
    cap.loss = double(ce.loss);
    cap.probs = flat(ce.probs);  // K×N column-major = N×K example-major, the device's order
    cap.grad = flat(ce.dlogits);
  } else {
    const Mat<float> t = Eigen::Map<const Mat<double>>(d.targets.data(), c.loss_classes, c.batch).cast<float>();
    const auto se = ref::squared_error<float>(z, t);
    cap.loss = double(se.loss);
    cap.grad = flat(se.dout);
  }
  return cap;
}

Tensors converted(const Case& c, const CaseData& d, Layout layout) {
  if (c.kind == CaseKind::loss) return cuda_side::loss_tensors(c, fake_loss(c, d));
  std::vector<std::pair<std::string, double>> norms;
  const auto cap = fake_capture(c, d, layout, &norms);
  if (c.kind == CaseKind::layer) return cuda_side::layer_tensors(c, cap);
  return cuda_side::network_tensors(c, cap, norms);
}

/// Compares the reference-float side (a) with the converted capture (b); every line must pass
/// except MISSING lines of quantities the CUDA side declares missing (K-FAC), with a reason.
void check_case(const Case& c, Side& reference) {
  const auto d = make_case_data(c);
  const auto a = reference.run(c, d);
  const auto b = converted(c, d, Layout::device);
  int pass = 0;
  for (const auto& l : compare_tensors(c, a, b, Precision::float32, Precision::float32)) {
    INFO(format_line(l));
    if (l.status == Status::missing) {
      CHECK(l.message == "side b returned no tensor of this name");  // never a CUDA-only tensor
      const std::string why = cuda_side::why_missing(c, l.tensor, l.quantity);
      CHECK(why.find("K-FAC") != std::string::npos);
    } else {
      CHECK(l.status == Status::pass);
      ++pass;
    }
  }
  CHECK(pass >= 1);
  // The same reference tensor of a quantity the CUDA side produces is never excused as missing.
  for (const auto& t : a)
    if (t.quantity == Quantity::param_grad || t.quantity == Quantity::activation ||
        t.quantity == Quantity::bn_output || t.quantity == Quantity::preactivation)
      CHECK(cuda_side::why_missing(c, t.name, t.quantity).empty());
}

}  // namespace

TEST_CASE("cuda capture conversion: every layer and loss case gives the reference side's tensors") {
  Selection s;
  s.layers = true;
  const auto cases = registry(s);
  auto reference = make_side("reference-float");
  std::set<LayerKind> kinds;
  int losses = 0;
  for (const auto& c : cases) {
    INFO(c.name);
    check_case(c, *reference);
    if (c.kind == CaseKind::layer) kinds.insert(c.layer);
    losses += c.kind == CaseKind::loss;
  }
  CHECK(kinds.size() == 8);
  CHECK(losses == 2);
}

TEST_CASE("cuda capture conversion: whole networks (MLP and convnet with BN, VGG16, ResNet32x4 with BN) match the reference side") {
  Selection s;
  s.networks = {"mlp-bn", "convnet-bn", "resnet32x4-bn", "vgg16"};
  s.width_mult = 0.0625;
  s.batch = 2;
  auto reference = make_side("reference-float");
  for (const auto& c : registry(s)) {
    INFO(c.name);
    check_case(c, *reference);
  }
}

TEST_CASE("cuda capture conversion negative controls: wrong orders fail, wrong sizes are refused") {
  Selection s;
  s.layers = true;
  const auto cases = registry(s);
  auto reference = make_side("reference-float");
  auto find = [&](const std::string& name) {
    for (const auto& c : cases)
      if (c.name == name) return c;
    FAIL("no case " << name);
    return cases.at(0);
  };
  const Case conv = find("conv2d 3x3 s1 p1 C3 7x9 K5 N2 bias");
  const auto d = make_case_data(conv);
  const auto a = reference->run(conv, d);
  auto status_of = [&](const Tensors& b, const std::string& tensor) {
    for (const auto& l : compare_tensors(conv, a, b, Precision::float32, Precision::float32))
      if (l.tensor == tensor) return l.status;
    FAIL("no line " << tensor);
    return Status::pass;
  };
  // Activations with the example index fastest: same numbers, other order.
  CHECK(status_of(converted(conv, d, Layout::chwn_activations), "fwd") == Status::fail);
  CHECK(status_of(converted(conv, d, Layout::device), "fwd") == Status::pass);
  // Weight gradient in the engine's K×(C·R·S) column-major order instead of PyTorch's.
  CHECK(status_of(converted(conv, d, Layout::internal_weight_order), "grad conv.weight") == Status::fail);
  CHECK(status_of(converted(conv, d, Layout::device), "grad conv.weight") == Status::pass);
  // A buffer of the wrong size is a capture bug: refused, not reshaped.
  auto cap = fake_capture(conv, d, Layout::device);
  cap.dinput.pop_back();
  CHECK_THROWS_AS(cuda_side::layer_tensors(conv, cap), InternalError);
  cap = fake_capture(conv, d, Layout::device);
  cap.out.pop_back();
  CHECK_THROWS_AS(cuda_side::layer_tensors(conv, cap), InternalError);
  // The notes carry the algorithm of the conv's geometry only.
  const Conv2dGeometry g = conv.spec.layers[0].conv_geometry(conv.batch);
  cap = fake_capture(conv, d, Layout::device);
  cap.algorithms.push_back(fmt::format("N={} C={} H={} W={} K={} R={} S={} pad={} stride={}: fprop algo 7 (deterministic, 0.0 MiB workspace)",
                                       g.N, g.C, g.H, g.W, g.K, g.R, g.S, g.pad, g.stride));
  const auto t = cuda_side::layer_tensors(conv, cap);
  CHECK(t.at(0).note == "cudnn fprop algo 7 (deterministic, 0.0 MiB workspace)");
}

TEST_CASE("a tensor only one side has is MISSING on either side, with the CUDA side's reason for K-FAC") {
  Selection s;
  s.layers = true;
  Case dense;
  for (const auto& c : registry(s))
    if (c.kind == CaseKind::layer && c.layer == LayerKind::dense) dense = c;
  const auto d = make_case_data(dense);
  auto reference = make_side("reference-float");
  const auto ref_t = reference->run(dense, d);
  const auto cuda_t = converted(dense, d, Layout::device);
  for (const bool cuda_is_a : {false, true}) {
    const auto lines = cuda_is_a ? compare_tensors(dense, cuda_t, ref_t, Precision::float32, Precision::float32)
                                 : compare_tensors(dense, ref_t, cuda_t, Precision::float32, Precision::float32);
    std::set<std::string> missing;
    for (const auto& l : lines)
      if (l.status == Status::missing) {
        missing.insert(l.tensor);
        CHECK(l.message == (cuda_is_a ? "side a returned no tensor of this name" : "side b returned no tensor of this name"));
      }
    CHECK(missing == std::set<std::string>{"kfc.A", "kfc.S"});
    Summary sum;
    for (const auto& l : lines) sum.add(l);
    CHECK(sum.failures() == 2);
  }
  CHECK(cuda_side::why_missing(dense, "kfc.A", Quantity::kfac_factor).find("K-FAC") != std::string::npos);
}

TEST_CASE("cuda side scope: exact mode unsupported with the reason, coverage names what is not compared") {
  Selection ex;
  ex.input = InputKind::small_integer;
  for (const auto& c : registry(ex)) CHECK(cuda_side::unsupported(c).find("float32 only") != std::string::npos);
  Selection s;
  s.layers = true;
  for (const auto& c : registry(s)) CHECK(cuda_side::unsupported(c).empty());
  const auto lines = cuda_side::coverage();
  auto has = [&](const std::string& needle) {
    for (const auto& l : lines)
      if (l.find(needle) != std::string::npos) return true;
    return false;
  };
  CHECK(has("kfac_factor, damped_inverse, preconditioned, metric kfac_*: NOT COMPARED"));
  CHECK(has("exact mode: NO CASE"));
}

// The host half of the CUDA side (apps/crosscheck/cuda_capture.hpp) without a GPU: a capture
// filled the way cuda::Capturer::capture and capture_kfac fill it (flat buffers in the device's
// orders: NCHW activations, PyTorch-order gradients and K-FAC updates, double BN statistics,
// column-major K-FAC factors and inverses), but computed by the float reference engine, must
// convert into exactly the reference side's tensors for every layer, loss and network case:
// the same names, quantities and shapes, values within the float32 tolerances, nothing
// missing (the K-FAC factors, inverses, updates and metrics included). Negative controls:
// buffers in another order (CHWN activations, the engine's internal weight order, conv patches
// in (r·S + s)·C + c order) fail, factors of other sampled targets fail, a buffer of the wrong
// size or a block of the wrong layer is refused, and a tensor only one side has is MISSING
// whichever side it is on.
#include <doctest/doctest.h>

#include <set>

#include <fmt/format.h>

#include "apps/crosscheck/case_data.hpp"
#include "apps/crosscheck/cases.hpp"
#include "apps/crosscheck/cuda_capture.hpp"
#include "apps/crosscheck/report.hpp"
#include "apps/crosscheck/side.hpp"
#include "apps/crosscheck/tensor_names.hpp"
#include "common/errors.hpp"
#include "reference/net/network.hpp"
#include "reference/net/params.hpp"
#include "reference/ops/conv2d.hpp"
#include "reference/ops/loss.hpp"
#include "common/optim/kfac_policy.hpp"

using namespace wdlab;
using namespace wdlab::xcheck;
using ref::Mat;

namespace {

/// How the fake device lays out what it hands back. `device` is CudaBackend's order; the others
/// are the mistakes a capture could make; other_rng_step draws the K-FAC-F targets and K-FAC-G
/// probes at RNG step 1 instead of the reference side's 0.
enum class Layout { device, chwn_activations, internal_weight_order, rsc_patches, other_rng_step };

std::vector<float> flat(const Mat<float>& m) { return std::vector<float>(m.data(), m.data() + m.size()); }

/// (C·H·W)×N column-per-example → the same numbers with the example index fastest.
std::vector<float> chwn(const Mat<float>& m) {
  std::vector<float> v;
  for (Eigen::Index r = 0; r < m.rows(); ++r)
    for (Eigen::Index c = 0; c < m.cols(); ++c) v.push_back(m(r, c));
  return v;
}

/// A conv A factor with its patch rows in (r·S + s)·C + c order instead of (c·R + r)·S + s (the
/// homogeneous coordinate stays last): the order of an NHWC patch matrix.
Mat<float> rsc_order(const Layer& l, const Mat<float>& A) {
  if (l.kind != LayerKind::conv2d) return A;
  const int C = l.in.C, R = l.kernel, S = l.kernel;
  std::vector<Eigen::Index> from(std::size_t(A.rows()));
  for (Eigen::Index i = 0; i < A.rows(); ++i) from[std::size_t(i)] = i;
  for (int c = 0; c < C; ++c)
    for (int r = 0; r < R; ++r)
      for (int q = 0; q < S; ++q) from[std::size_t((r * S + q) * C + c)] = (c * R + r) * S + q;
  Mat<float> P(A.rows(), A.cols());
  for (Eigen::Index i = 0; i < A.rows(); ++i)
    for (Eigen::Index j = 0; j < A.cols(); ++j) P(i, j) = A(from[std::size_t(i)], from[std::size_t(j)]);
  return P;
}

/// One block as capture_kfac downloads it, from the engine's factors: damping π-split,
/// (F + dI)⁻¹ by a Cholesky solve, U = S̃⁻¹ [dW db] Ã⁻¹ / T (T > 1 only, as the reference).
cuda::KfacBlockCapture fake_block(const NetworkSpec& spec, const ref::ParamStore<float>& p,
                                  const ref::ParamStore<float>& grads, int layer, const Mat<float>& A,
                                  const Mat<float>& S, int T, Layout layout) {
  const Layer& l = spec.layers[std::size_t(layer)];
  const auto& slots = p.slots[std::size_t(layer)];
  cuda::KfacBlockCapture k;
  k.layer = layer;
  k.w = slots.weight;
  k.b = slots.bias;
  k.out = int(S.rows());
  k.in = int(p.values[std::size_t(slots.weight)].cols());
  k.locations = T;
  const Mat<float> A_dev = layout == Layout::rsc_patches ? rsc_order(l, A) : A;
  k.A = flat(A_dev);  // Eigen's column-major storage is the device's
  k.S = flat(S);
  const double lambda = crosscheck_optim(optim::OptimizerKind::kfac_f).kfac.damping;
  const auto split = optim::pi_split_damping(A.trace(), int(A.rows()), S.trace(), int(S.rows()), lambda, T);
  k.damping_a = split.a;
  k.damping_s = split.s;
  auto inverse = [](const Mat<float>& F, double d) {
    const Mat<float> I = Mat<float>::Identity(F.rows(), F.cols());
    return Mat<float>(Mat<float>(F + float(d) * I).llt().solve(I));
  };
  const Mat<float> Ai = inverse(A, split.a), Si = inverse(S, split.s);
  k.A_inv = flat(Ai);
  k.S_inv = flat(Si);
  Mat<float> G(k.out, A.rows());
  G.leftCols(k.in) = grads.values[std::size_t(slots.weight)];
  if (slots.bias >= 0) G.col(k.in) = grads.values[std::size_t(slots.bias)];
  Mat<float> U = Si * G * Ai;
  if (T > 1) U /= float(T);
  const Mat<float> Uw = U.leftCols(k.in);
  k.update_w = layout == Layout::internal_weight_order ? flat(Uw)
                                                       : ref::to_pytorch_order(p.info[std::size_t(slots.weight)], Uw);
  if (slots.bias >= 0) k.update_b = flat(Mat<float>(U.col(k.in)));
  return k;
}

/// A capture of a layer or network case as the device would return it, from the float engine;
/// `measured` gets the rows CudaBackend::measure(weight_metrics_request(c)) would return:
/// norm.<w> = ‖θ_l‖ and elr.<w> = η/‖θ_l‖² (Eq. 9), written out here.
cuda::Capture fake_capture(const Case& c, const CaseData& d, Layout layout,
                           std::vector<std::pair<std::string, double>>* measured = nullptr) {
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
    if (measured && p.info[i].role == ParamRole::weight) {
      const double n = double(p.values[i].norm());
      measured->emplace_back("norm." + p.info[i].name, n);
      measured->emplace_back("elr." + p.info[i].name, c.lr / (n * n));
    }
  }
  for (std::size_t i = 0; i < p.info.size(); ++i)
    cap.params.push_back(layout == Layout::internal_weight_order ? flat(p.values[i])
                                                                 : ref::to_pytorch_order(p.info[i], p.values[i]));
  // K-FAC (capture_kfac): layer cases the factors of the given cotangent, network cases those of
  // the sampled targets and probes, at the parameters before the running-statistics update.
  const Layer& first = spec.layers[0];
  if (c.kind == CaseKind::layer && first.kind == LayerKind::dense) {
    Mat<float> a = x;
    if (first.bias == Bias::on) {
      a.conservativeResize(a.rows() + 1, Eigen::NoChange);
      a.row(a.rows() - 1).setOnes();
    }
    cap.kfac_given.push_back(fake_block(spec, p, bw.grads, 0, Mat<float>(a * a.transpose() / float(N)),
                                        Mat<float>(dy * dy.transpose() / float(N)), 1, layout));
  } else if (c.kind == CaseKind::layer && first.kind == LayerKind::conv2d) {
    const auto g = first.conv_geometry(N);
    cap.kfac_given.push_back(fake_block(
        spec, p, bw.grads, 0,
        ref::conv2d_kfc_input_factor(g, x, first.bias == Bias::on ? ref::Homogeneous::on : ref::Homogeneous::off),
        ref::conv2d_kfc_output_factor(g, dy), int(g.locations()), layout));
  } else if (c.kind == CaseKind::network) {
    const std::uint64_t step = layout == Layout::other_rng_step ? 1 : 0;
    for (auto kind : {ref::CurvatureKind::fisher, ref::CurvatureKind::gauss_newton}) {
      auto& blocks = kind == ref::CurvatureKind::fisher ? cap.kfac_fisher : cap.kfac_gauss_newton;
      for (const auto& st : ref::kfac_statistics(spec, p, x, kind, 1.0, c.seed, step))
        blocks.push_back(fake_block(spec, p, bw.grads, st.layer, st.A, st.S, st.locations, layout));
    }
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
  std::vector<std::pair<std::string, double>> measured;
  const auto cap = fake_capture(c, d, layout, &measured);
  if (c.kind == CaseKind::layer) return cuda_side::layer_tensors(c, cap);
  return cuda_side::network_tensors(c, cap, measured);
}

bool kfac_line(const std::string& tensor, Quantity q) {
  return q == Quantity::kfac_factor || q == Quantity::damped_inverse || q == Quantity::preconditioned ||
         (q == Quantity::metric && tensor.find("kfac_") != std::string::npos);
}

/// Compares the reference-float side (a) with the converted capture (b): every line must pass,
/// the K-FAC ones included, and none is excused as missing. Returns the number of K-FAC lines.
int check_case(const Case& c, Side& reference) {
  const auto d = make_case_data(c);
  const auto a = reference.run(c, d);
  const auto b = converted(c, d, Layout::device);
  int pass = 0, kfac = 0;
  for (const auto& l : compare_tensors(c, a, b, Precision::float32, Precision::float32)) {
    INFO(format_line(l));
    CHECK(l.status == Status::pass);
    pass += l.status == Status::pass;
    kfac += l.status == Status::pass && kfac_line(l.tensor, l.quantity);
  }
  CHECK(pass >= 1);
  for (const auto& t : a) CHECK(cuda_side::why_missing(c, t.name, t.quantity).empty());
  return kfac;
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
    const int kfac = check_case(c, *reference);
    // kfc.A and kfc.S of every dense and conv case.
    CHECK(kfac == (c.kind == CaseKind::layer && (c.layer == LayerKind::dense || c.layer == LayerKind::conv2d) ? 2 : 0));
    if (c.kind == CaseKind::layer) kinds.insert(c.layer);
    losses += c.kind == CaseKind::loss;
  }
  CHECK(kinds.size() == all_layer_kinds.size());
  CHECK(losses == int(all_loss_kinds.size()));
}

TEST_CASE("cuda capture conversion: whole networks (MLP and convnet with BN, VGG16, ResNet32x4 with BN) match the reference side") {
  Selection s;
  s.networks = {"mlp-bn", "convnet-bn", "resnet32x4-bn", "vgg16"};
  s.width_mult = 0.0625;
  s.batch = 2;
  auto reference = make_side("reference-float");
  for (const auto& c : registry(s)) {
    INFO(c.name);
    // Per block and curvature: A, S, both inverses, the weight's update (and the bias's), the
    // trace; one kfac_gn_quadratic.
    int expected = 1;
    for (const auto& l : c.spec.layers)
      if (l.has_weights()) expected += 2 * (6 + (l.bias == Bias::on ? 1 : 0));
    CHECK(check_case(c, *reference) == expected);
  }
}

TEST_CASE("cuda capture conversion negative controls: K-FAC factors in another patch order, of other sampled targets, or with weights in the engine's order fail") {
  Selection s;
  s.networks = {"convnet-bn"};
  s.width_mult = 0.0625;
  s.batch = 2;
  const Case c = registry(s).at(0);
  const auto d = make_case_data(c);
  auto reference = make_side("reference-float");
  const auto a = reference->run(c, d);
  std::string conv, conv_w;
  for (const auto& l : c.spec.layers)
    if (l.kind == LayerKind::conv2d && l.in.C > 1 && conv.empty()) conv = l.name;
  for (const auto& p : c.spec.params())
    if (p.role == ParamRole::weight && c.spec.layers[std::size_t(p.layer)].name == conv) conv_w = p.name;
  REQUIRE(!conv.empty());
  auto status_of = [&](Layout layout, const std::string& tensor) {
    for (const auto& l : compare_tensors(c, a, converted(c, d, layout), Precision::float32, Precision::float32))
      if (l.tensor == tensor) return l.status;
    FAIL("no line " << tensor);
    return Status::pass;
  };
  for (const char* est : {"kfac_f", "kfac_g"}) {
    INFO(est);
    CHECK(status_of(Layout::device, names::factor(est, 'A', conv)) == Status::pass);
    CHECK(status_of(Layout::rsc_patches, names::factor(est, 'A', conv)) == Status::fail);
    CHECK(status_of(Layout::rsc_patches, names::factor(est, 'S', conv)) == Status::pass);  // only A has patches
    // The targets/probes of RNG step 1: A (inputs only) agrees, S and the update do not.
    CHECK(status_of(Layout::other_rng_step, names::factor(est, 'A', conv)) == Status::pass);
    CHECK(status_of(Layout::other_rng_step, names::factor(est, 'S', conv)) == Status::fail);
    CHECK(status_of(Layout::other_rng_step, names::update(est, conv_w)) == Status::fail);
    CHECK(status_of(Layout::device, names::update(est, conv_w)) == Status::pass);
    CHECK(status_of(Layout::internal_weight_order, names::update(est, conv_w)) == Status::fail);
  }
  CHECK(status_of(Layout::device, names::metric("kfac_gn_quadratic", "")) == Status::pass);
  CHECK(status_of(Layout::internal_weight_order, names::metric("kfac_gn_quadratic", "")) == Status::fail);
  // A block that is not the spec's (another layer, a missing block) is a capture bug: refused.
  std::vector<std::pair<std::string, double>> norms;
  auto cap = fake_capture(c, d, Layout::device, &norms);
  cap.kfac_fisher.pop_back();
  CHECK_THROWS_AS(cuda_side::network_tensors(c, cap, norms), InternalError);
  cap = fake_capture(c, d, Layout::device, &norms);
  std::swap(cap.kfac_gauss_newton.at(0), cap.kfac_gauss_newton.at(1));
  CHECK_THROWS_AS(cuda_side::network_tensors(c, cap, norms), InternalError);
  cap = fake_capture(c, d, Layout::device, &norms);
  cap.kfac_fisher.at(0).S_inv.pop_back();
  CHECK_THROWS_AS(cuda_side::network_tensors(c, cap, norms), InternalError);
}

TEST_CASE("cuda capture conversion negative control: a wrong elr from the backend's measure() fails on its own") {
  // elr used to be recomputed from the norm on both sides, so only a wrong norm could fail it.
  Selection s;
  s.networks = {"mlp-bn"};
  s.width_mult = 0.0625;
  s.batch = 2;
  const Case c = registry(s).at(0);
  const auto d = make_case_data(c);
  const auto a = make_side("reference-float")->run(c, d);
  std::vector<std::pair<std::string, double>> measured;
  const auto cap = fake_capture(c, d, Layout::device, &measured);
  std::string wrong;
  for (auto& [name, v] : measured)
    if (wrong.empty() && name.rfind("elr.", 0) == 0) {
      wrong = name.substr(4);
      v *= 1.1;  // above the metric tolerance (3e-2 in BN networks); the norm row stays right
    }
  REQUIRE(!wrong.empty());
  int fails = 0, elr_lines = 0;
  for (const auto& l : compare_tensors(c, a, cuda_side::network_tensors(c, cap, measured), Precision::float32,
                                       Precision::float32)) {
    INFO(format_line(l));
    fails += l.status != Status::pass;
    elr_lines += l.tensor.rfind(names::metric("elr", ""), 0) == 0;
    if (l.tensor == names::metric("elr", wrong)) CHECK(l.status == Status::fail);
    if (l.tensor == names::metric("norm", wrong)) CHECK(l.status == Status::pass);
  }
  CHECK(fails == 1);
  CHECK(elr_lines >= 2);
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
  // The given cotangent's A factor with the patch rows in another order.
  CHECK(status_of(converted(conv, d, Layout::rsc_patches), "kfc.A") == Status::fail);
  CHECK(status_of(converted(conv, d, Layout::device), "kfc.A") == Status::pass);
  CHECK(status_of(converted(conv, d, Layout::rsc_patches), "kfc.S") == Status::pass);
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

TEST_CASE("a tensor only one side has is MISSING on either side") {
  Selection s;
  s.layers = true;
  Case dense;
  for (const auto& c : registry(s))
    if (c.kind == CaseKind::layer && c.layer == LayerKind::dense) dense = c;
  const auto d = make_case_data(dense);
  auto reference = make_side("reference-float");
  const auto ref_t = reference->run(dense, d);
  auto cuda_t = converted(dense, d, Layout::device);
  // A capture that lost its K-FAC factors.
  std::erase_if(cuda_t, [](const Tensor& t) { return t.quantity == Quantity::kfac_factor; });
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
  CHECK(cuda_side::why_missing(dense, "kfc.A", Quantity::kfac_factor).empty());  // no excuse left
}

TEST_CASE("cuda side scope: exact mode runs on the float32 path, coverage names what is compared") {
  Selection ex;
  ex.input = InputKind::small_integer;
  for (const auto& c : registry(ex)) {
    CHECK(cuda_side::unsupported(c).empty());
    CHECK(integer_sum_bound(c) < kFloat32ExactIntegers);  // what makes float32 exact for them
  }
  Selection s;
  s.layers = true;
  for (const auto& c : registry(s)) CHECK(cuda_side::unsupported(c).empty());
  const auto lines = cuda_side::coverage();
  auto has = [&](const std::string& needle) {
    for (const auto& l : lines)
      if (l.find(needle) != std::string::npos) return true;
    return false;
  };
  CHECK(!has("NOT COMPARED"));
  CHECK(has("K-FAC-F (same sampled targets) and K-FAC-G (same probes)"));
  CHECK(has("K-FAC factors A and S of the given cotangent"));
  CHECK(has("side cuda exact mode:      the integer layer cases on the float32 path, bit for bit"));
  CHECK(!has("NO CASE"));
}

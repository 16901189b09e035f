#include "apps/crosscheck/cases.hpp"

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "common/errors.hpp"
#include "common/model_zoo.hpp"

namespace wdlab::xcheck {

std::string to_string(CaseKind k) {
  switch (k) {
    case CaseKind::layer: return "layer";
    case CaseKind::loss: return "loss";
    case CaseKind::network: return "network";
    case CaseKind::optimizer: return "optimizer";
  }
  return "?";
}

std::string to_string(InputKind k) {
  switch (k) {
    case InputKind::gaussian: return "gaussian";
    case InputKind::small_integer: return "small_integer";
  }
  return "?";
}

std::string to_string(LossKind k) {
  switch (k) {
    case LossKind::softmax_cross_entropy: return "softmax_cross_entropy";
    case LossKind::squared_error: return "squared_error";
  }
  return "?";
}

namespace {

/// [layer, flatten]: the layer alone, its output flattened so that it is the spec's "logits".
Case layer_case(std::string name, LayerKind kind, Shape in, int N, InputKind input,
                const std::function<void(SpecBuilder&)>& add_layer, Affine affine = Affine::off) {
  // The class count must equal the flattened output: find it with a first builder.
  SpecBuilder probe("layer", in, 1);
  add_layer(probe);
  SpecBuilder b("layer", in, probe.shape_of(probe.last()).size());
  b.affine = affine;
  add_layer(b);
  b.flatten();
  NetworkSpec spec = b.finish();
  Case c;
  c.name = std::move(name);
  c.kind = CaseKind::layer;
  c.spec = std::move(spec);
  c.layer = kind;
  c.batch = N;
  c.input = input;
  return c;
}

struct ConvGeom {
  int C, H, W, K, R, pad, stride, N;
  Bias bias;
};

std::vector<Case> layer_cases(InputKind input) {
  const bool exact = input == InputKind::small_integer;
  std::vector<Case> out;
  // conv2d: odd sizes, stride 1/2, padding 0/1, 1×1 and 3×3, batch 1, channels > 1 on both sides.
  const ConvGeom convs[] = {
      {3, 7, 9, 5, 3, 1, 1, 2, Bias::on},   {4, 9, 8, 6, 3, 1, 2, 3, Bias::off},
      {2, 5, 6, 3, 3, 0, 1, 1, Bias::on},   {3, 11, 7, 4, 3, 0, 2, 2, Bias::on},
      {6, 5, 5, 7, 1, 0, 1, 2, Bias::off},  {5, 8, 8, 9, 1, 0, 2, 2, Bias::on},
      {16, 6, 6, 16, 3, 1, 1, 2, Bias::on},
  };
  for (const auto& g : convs) {
    const std::string name = fmt::format("conv2d {}x{} s{} p{} C{} {}x{} K{} N{} {}", g.R, g.R, g.stride,
                                         g.pad, g.C, g.H, g.W, g.K, g.N, g.bias == Bias::on ? "bias" : "nobias");
    out.push_back(layer_case(name, LayerKind::conv2d, Shape{g.C, g.H, g.W}, g.N, input, [&](SpecBuilder& b) {
      b.conv("conv", g.K, g.R, g.stride, g.pad, g.bias, -1);
    }));
  }
  // dense: a flat input and an image input (dense reads C·H·W features), batch 1.
  struct DenseGeom { Shape in; int out, N; Bias bias; };
  const DenseGeom denses[] = {{{7, 1, 1}, 5, 3, Bias::on}, {{13, 1, 1}, 1, 1, Bias::off},
                              {{64, 1, 1}, 33, 4, Bias::on}, {{2, 3, 5}, 4, 2, Bias::on}};
  for (const auto& d : denses)
    out.push_back(layer_case(fmt::format("dense in {} out {} N{} {}", d.in.describe(), d.out, d.N,
                                         d.bias == Bias::on ? "bias" : "nobias"),
                             LayerKind::dense, d.in, d.N, input,
                             [&](SpecBuilder& b) { b.dense("fc", d.out, d.bias, -1); }));
  // Max-pool (floor of odd sizes, overlapping windows, batch 1), global average pool, flatten,
  // residual add; then every attribute-free kind without a case here gets one on 3×5×7, N2
  // (relu among them), so a kind added to common/layer_kinds.hpp is compared at once.
  struct PoolGeom { Shape in; int window, stride, N; };
  const PoolGeom pools[] = {{{3, 8, 8}, 2, 2, 2}, {{3, 7, 9}, 2, 2, 2}, {{2, 9, 9}, 3, 2, 1}};
  for (const auto& p : pools)
    out.push_back(layer_case(fmt::format("maxpool {}x{} s{} {} N{}", p.window, p.window, p.stride,
                                         p.in.describe(), p.N),
                             LayerKind::maxpool, p.in, p.N, input,
                             [&](SpecBuilder& b) { b.maxpool(p.window, p.stride, -1); }));
  // Exact mode divides by H·W: a power of two keeps the mean exact in any order.
  const Shape gaps[] = {exact ? Shape{5, 2, 4} : Shape{5, 3, 7}, Shape{4, 4, 4}};
  for (const auto& s : gaps)
    out.push_back(layer_case(fmt::format("global_avgpool {} N2", s.describe()), LayerKind::global_avgpool,
                             s, 2, input, [](SpecBuilder& b) { b.global_avgpool(-1); }));
  out.push_back(layer_case("flatten 3x4x5 N2", LayerKind::flatten, Shape{3, 4, 5}, 2, input,
                           [](SpecBuilder& b) { b.flatten(-1); }));
  out.push_back(layer_case("residual_add 4x3x3 N2 (x + x)", LayerKind::residual_add, Shape{4, 3, 3}, 2, input,
                           [](SpecBuilder& b) { b.add(-1, -1); }));
  for (LayerKind k : all_layer_kinds) {
    const LayerKindInfo info = layer_info(k);
    const bool has_case = std::any_of(out.begin(), out.end(), [&](const Case& c) { return c.kind == CaseKind::layer && c.layer == k; });
    if (info.fields != LayerFields::none || has_case || (exact && !exact_capable(k))) continue;
    out.push_back(layer_case(fmt::format("{} 3x5x7 N2{}", info.name, info.inputs == 2 ? " (x + x)" : ""), k,
                             Shape{3, 5, 7}, 2, input, [k](SpecBuilder& b) { b.layer(k, -1); }));
  }
  if (exact) return out;
  // batchnorm (train mode): conv maps, dense features, batch 1 with spatial extent, affine γ/β.
  struct BnGeom { Shape in; int N; Affine affine; };
  const BnGeom bns[] = {{{4, 5, 3}, 2, Affine::off}, {{7, 1, 1}, 5, Affine::off},
                        {{3, 4, 4}, 1, Affine::off}, {{3, 3, 5}, 3, Affine::on}};
  for (const auto& g : bns)
    out.push_back(layer_case(fmt::format("batchnorm {} N{}{}", g.in.describe(), g.N,
                                         g.affine == Affine::on ? " affine" : ""),
                             LayerKind::batchnorm, g.in, g.N, input,
                             [&](SpecBuilder& b) { b.batchnorm("bn", -1); }, g.affine));
  // Losses.
  Case ce;
  ce.name = "softmax_cross_entropy K10 N5";
  ce.kind = CaseKind::loss;
  ce.loss = LossKind::softmax_cross_entropy;
  ce.loss_classes = 10;
  ce.batch = 5;
  out.push_back(ce);
  Case se = ce;
  se.name = "squared_error K4 N3";
  se.loss = LossKind::squared_error;
  se.loss_classes = 4;
  se.batch = 3;
  out.push_back(se);
  return out;
}

}  // namespace

std::vector<std::string> network_names() {
  return {"mlp", "mlp-bn", "convnet-bn", "vgg16", "vgg16-bn", "resnet32x4", "resnet32x4-bn"};
}

std::vector<std::string> optimizer_names() {
  std::vector<std::string> out;
  for (optim::OptimizerKind k : optim::all_optimizer_kinds) out.push_back(to_string(k));
  return out;
}

NetworkSpec network_spec(const std::string& name, double width_mult, Bias bn_bias) {
  const bool bn = name.size() > 3 && name.substr(name.size() - 3) == "-bn";
  const std::string base = bn ? name.substr(0, name.size() - 3) : name;
  zoo::ConvOptions conv{.norm = bn ? Norm::batchnorm : Norm::none, .bias = bn ? bn_bias : Bias::on,
                        .width_mult = width_mult};
  const Shape cifar{3, 32, 32}, fmnist{1, 28, 28};
  if (base == "mlp") {
    const int width = std::max(1, int(std::lround(1000 * width_mult)));
    return zoo::mlp(fmnist, 10, {.depth = 2, .width = width, .bias = conv.bias, .norm = conv.norm});
  }
  if (base == "convnet" && bn) return zoo::small_convnet(fmnist, 10, std::max(1, int(std::lround(32 * width_mult))), conv);
  if (base == "vgg16") return zoo::vgg(16, cifar, 10, conv);
  if (base == "resnet32x4") return zoo::resnet(32, 4, cifar, 10, conv);
  throw UsageError("--network", fmt::format("unknown network '{}' (one of: {})", name, fmt::join(network_names(), ", ")));
}

optim::OptimConfig crosscheck_optim(optim::OptimizerKind kind) {
  optim::OptimConfig c;
  c.kind = kind;
  c.sgd.momentum = 0.9;
  c.reg.kind = optim::Regularization::wd;
  c.reg.weight_decay = 1e-2;  // larger than the paper's 5e-4, so that a decay bug moves Δθ visibly
  c.kfac.damping = 1e-2;      // a well-conditioned preconditioner: float32 rounding is not amplified by 1/λ
  c.adam.eps = 1e-4;          // Adam's step is sign(g) where |g| ≫ ε: with 1e-8, gradients at rounding
                              // level (dead units) step by ±η on their rounding noise in either precision
  c.kfac.t_cov = 1;
  c.kfac.t_inv = 1;
  c.kfac.factor_init = optim::FactorInit::data_pass;
  c.kfac.kl_clip = 1e-2;
  c.validate();
  return c;
}

std::vector<Case> registry(const Selection& sel) {
  std::vector<Case> out;
  if (sel.layers || sel.input == InputKind::small_integer) {
    auto l = layer_cases(sel.input);
    out.insert(out.end(), l.begin(), l.end());
  }
  if (sel.input == InputKind::small_integer) {
    for (auto& c : out) c.seed = sel.seed;
    return out;  // exact mode: layer cases only
  }
  const int batch = sel.batch > 0 ? sel.batch : 8;
  if (batch < 2) throw UsageError("--batch", "whole networks need a batch of at least 2 (batch norm)");
  if (!(sel.width_mult > 0)) throw UsageError("--width-mult", "must be > 0");
  if (sel.steps < 1) throw UsageError("--steps", "must be >= 1");
  for (const auto& net : sel.networks) {
    NetworkSpec spec = network_spec(net, sel.width_mult, Bias::off);
    if (!sel.optimizers.empty()) {
      for (const auto& o : sel.optimizers) {
        Case c;
        const auto kind = optim::parse_optimizer_kind("--optimizer", o);
        c.name = fmt::format("{} {} x{} steps N{}", net, o, sel.steps, batch);
        c.kind = CaseKind::optimizer;
        c.spec = spec;
        c.batch = batch;
        c.optim = crosscheck_optim(kind);
        c.steps = sel.steps;
        c.lr = kind == optim::OptimizerKind::sgd ? 1e-2 : 1e-3;  // K-FAC and Adam steps are larger per η
        out.push_back(std::move(c));
      }
    } else {
      Case c;
      c.name = fmt::format("{} N{}", net, batch);
      c.kind = CaseKind::network;
      c.spec = std::move(spec);
      c.batch = batch;
      out.push_back(std::move(c));
    }
  }
  for (auto& c : out) c.seed = sel.seed;
  return out;
}

bool exact_capable(LayerKind k) { return layer_info(k).arithmetic == Arithmetic::integer; }

double integer_sum_bound(const Case& c) {
  const Layer& l = c.spec.layers.at(0);
  const double N = c.batch;
  double longest = l.in.size();  // default: a sum over the whole input (global average pooling)
  if (l.kind == LayerKind::dense) {
    // y = Wx + b: `in` terms; dx = Wᵀdy: `out` terms; dW, db, Ω, Γ: N terms.
    longest = std::max({double(l.in.size()), double(l.out.size()), N});
  } else if (l.kind == LayerKind::conv2d) {
    const Conv2dGeometry g = l.conv_geometry(c.batch);
    // y: C·R·S terms; dx: at most K·R·S; dW, db, Ω, Γ: N·P·Q.
    longest = std::max({double(g.C) * g.R * g.S, double(g.K) * g.R * g.S, N * g.P() * g.Q()});
  }
  return 64.0 * (longest + 1);
}

std::vector<MetricInfo> metric_catalog() {
  return {
      // Network cases (norm, elr: each side's own Backend::measure; the others computed from the
      // pass; tensor_names.hpp). damping_eff is compared in the K-FAC optimizer cases below.
      {"norm", ""},
      {"elr", ""},
      {"kfac_gn_quadratic", ""},
      {"kfac_f_trace", ""},
      {"kfac_g_trace", ""},
      // Optimizer cases: Backend::measure after the steps (common/train/measure.hpp).
      {"norm.*, elr.*, elr_opt.*", ""},
      {"damping_eff.*, damping_frac.*", ""},
      {"jac_norm, jac_norm_est", ""},
      {"kfac_gn_norm, gn_norm", ""},
      {"gn_trace.*, fisher_trace.*", ""},
      {"rot.*, grad_ratio.*, rot_pred.*, elr_pred.*", ""},
      {"gen_gap", "test loss - train loss over data sets: computed by the trainer, not per batch"},
      {"train_eval_loss/acc", "an evaluation pass over the training set: trainer side"},
  };
}

std::vector<std::string> coverage(const std::vector<Case>& cases) {
  std::vector<std::string> lines;
  std::map<LayerKind, int> alone, exact, inside;
  std::map<std::string, int> losses, optims;
  int network_cases = 0, optimizer_cases = 0;
  for (const auto& c : cases) {
    if (c.kind == CaseKind::layer) (c.input == InputKind::small_integer ? exact : alone)[c.layer]++;
    if (c.kind == CaseKind::loss) losses[to_string(c.loss)]++;
    if (c.kind == CaseKind::network || c.kind == CaseKind::optimizer) {
      for (const auto& l : c.spec.layers) inside[l.kind]++;
      if (c.kind == CaseKind::network) ++network_cases;
    }
    if (c.kind == CaseKind::optimizer) {
      optims[to_string(c.optim.kind)]++;
      ++optimizer_cases;
    }
  }
  for (LayerKind k : all_layer_kinds) {
    const std::string n = to_string(k);
    lines.push_back(alone[k] ? fmt::format("layer     {:<22} {} case(s) alone", n, alone[k])
                             : fmt::format("layer     {:<22} NO CASE alone", n));
    if (exact_capable(k))
      lines.push_back(exact[k] ? fmt::format("exact     {:<22} {} case(s)", n, exact[k])
                               : fmt::format("exact     {:<22} NO CASE", n));
    else
      lines.push_back(fmt::format("exact     {:<22} NO CASE (not integer arithmetic: square roots, transcendental functions)", n));
    lines.push_back(inside[k] ? fmt::format("network   {:<22} in {} layer(s) of whole-network cases", n, inside[k])
                              : fmt::format("network   {:<22} NO CASE in a whole network", n));
  }
  for (LossKind k : all_loss_kinds) {
    const std::string n = to_string(k);
    lines.push_back(losses[n] ? fmt::format("loss      {:<22} {} case(s)", n, losses[n])
                              : fmt::format("loss      {:<22} NO CASE", n));
  }
  for (optim::OptimizerKind k : optim::all_optimizer_kinds) {
    const std::string n = to_string(k);
    lines.push_back(optims[n] ? fmt::format("optimizer {:<22} {} case(s)", n, optims[n])
                              : fmt::format("optimizer {:<22} NO CASE", n));
  }
  for (const auto& m : metric_catalog()) {
    if (!m.why_not.empty())
      lines.push_back(fmt::format("metric    {:<22} NO CASE: {}", m.name, m.why_not));
    else if (m.name.find('*') != std::string::npos || m.name.find(',') != std::string::npos)
      lines.push_back(optimizer_cases ? fmt::format("metric    {:<22} {} optimizer case(s)", m.name, optimizer_cases)
                                      : fmt::format("metric    {:<22} NO CASE (no optimizer case selected)", m.name));
    else
      lines.push_back(network_cases ? fmt::format("metric    {:<22} {} network case(s)", m.name, network_cases)
                                    : fmt::format("metric    {:<22} NO CASE (no network case selected)", m.name));
  }
  return lines;
}

}  // namespace wdlab::xcheck

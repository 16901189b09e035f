#include "common/network_spec.hpp"

#include <fmt/format.h>

#include "common/errors.hpp"

namespace wdlab {

std::string to_string(LayerKind k) { return std::string(layer_info(k).name); }

std::string Shape::describe() const { return fmt::format("{}x{}x{}", C, H, W); }

Conv2dGeometry Layer::conv_geometry(int N) const {
  return Conv2dGeometry{.N = N, .C = in.C, .H = in.H, .W = in.W, .K = out.C, .R = kernel,
                        .S = kernel, .pad = pad, .stride = stride};
}

Pool2dGeometry Layer::pool_geometry(int N) const {
  return Pool2dGeometry{.N = N, .C = in.C, .H = in.H, .W = in.W, .window = kernel, .stride = stride};
}

std::int64_t ParamInfo::numel() const {
  std::int64_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

std::vector<ParamInfo> NetworkSpec::params() const {
  std::vector<ParamInfo> out;
  for (int i = 0; i < int(layers.size()); ++i) {
    const Layer& l = layers[i];
    auto add = [&](const std::string& suffix, std::vector<std::int64_t> shape, ParamRole role) {
      out.push_back(ParamInfo{l.name + "." + suffix, std::move(shape), i, role});
    };
    switch (layer_info(l.kind).fields) {
      case LayerFields::dense:
        add("weight", {l.out.C, l.in.size()}, ParamRole::weight);
        if (l.bias == Bias::on) add("bias", {l.out.C}, ParamRole::bias);
        break;
      case LayerFields::conv2d:
        add("weight", {l.out.C, l.in.C, l.kernel, l.kernel}, ParamRole::weight);
        if (l.bias == Bias::on) add("bias", {l.out.C}, ParamRole::bias);
        break;
      case LayerFields::batchnorm:
        if (l.affine == Affine::on) {
          add("weight", {l.out.C}, ParamRole::bn_weight);
          add("bias", {l.out.C}, ParamRole::bn_bias);
        }
        add("running_mean", {l.out.C}, ParamRole::running_mean);
        add("running_var", {l.out.C}, ParamRole::running_var);
        break;
      case LayerFields::window:
      case LayerFields::none: break;
    }
  }
  return out;
}

std::int64_t NetworkSpec::num_trainable() const {
  std::int64_t n = 0;
  for (const auto& p : params())
    if (p.trainable()) n += p.numel();
  return n;
}

bool NetworkSpec::followed_by_bn(int i) const {
  for (int j = i + 1; j < int(layers.size()); ++j)
    for (int in : layers[j].inputs)
      if (in == i) return layers[j].kind == LayerKind::batchnorm;
  return false;
}

std::string NetworkSpec::describe() const {
  std::string s = fmt::format("{}: input {}, {} classes, {} trainable parameters\n", model,
                              input.describe(), classes, num_trainable());
  for (int i = 0; i < int(layers.size()); ++i) {
    const Layer& l = layers[i];
    std::string from;
    for (int in : l.inputs) from += (from.empty() ? "" : ",") + std::to_string(in);
    s += fmt::format("  [{:>3}] {:<15} {:<24} {} -> {}  (from {})\n", i, to_string(l.kind), l.name,
                     l.in.describe(), l.out.describe(), from);
  }
  return s;
}

void NetworkSpec::validate() const {
  if (layers.empty()) throw UsageError("model", "network has no layers");
  for (int i = 0; i < int(layers.size()); ++i) {
    const Layer& l = layers[i];
    const std::size_t want = std::size_t(layer_info(l.kind).inputs);
    if (l.inputs.size() != want)
      throw UsageError("model", fmt::format("layer {} ({}) needs {} input(s)", i, to_string(l.kind), want));
    for (int in : l.inputs) {
      if (in < -1 || in >= i)
        throw UsageError("model", fmt::format("layer {} reads layer {}, not an earlier one", i, in));
      const Shape s = in == -1 ? input : layers[in].out;
      if (!(s == l.in))
        throw UsageError("model", fmt::format("layer {} ({}) expects {} but gets {}", i,
                                              to_string(l.kind), l.in.describe(), s.describe()));
    }
  }
  if (!(layers.back().out == Shape{classes, 1, 1}))
    throw UsageError("model", fmt::format("output is {}, expected {}x1x1", layers.back().out.describe(), classes));
}

SpecBuilder::SpecBuilder(std::string model, Shape input, int classes) {
  spec_.model = std::move(model);
  spec_.input = input;
  spec_.classes = classes;
}

Shape SpecBuilder::shape_of(int i) const { return i == -1 ? spec_.input : spec_.layers.at(i).out; }

int SpecBuilder::push(Layer l, int from) {
  if (from == -2) from = last();
  l.inputs = {from};
  l.in = shape_of(from);
  spec_.layers.push_back(std::move(l));
  return last();
}

int SpecBuilder::dense(const std::string& name, int out, Bias b, int from) {
  Layer l{.kind = LayerKind::dense, .name = name, .bias = b};
  l.out = Shape{out, 1, 1};
  return push(l, from);
}

int SpecBuilder::conv(const std::string& name, int K, int kernel, int stride, int pad, Bias b, int from) {
  Layer l{.kind = LayerKind::conv2d, .name = name, .bias = b, .kernel = kernel, .stride = stride, .pad = pad};
  const Shape in = shape_of(from == -2 ? last() : from);
  const Conv2dGeometry g{.N = 1, .C = in.C, .H = in.H, .W = in.W, .K = K, .R = kernel, .S = kernel,
                         .pad = pad, .stride = stride};
  g.validate();
  l.out = Shape{K, g.P(), g.Q()};
  return push(l, from);
}

int SpecBuilder::batchnorm(const std::string& name, int from) {
  Layer l{.kind = LayerKind::batchnorm, .name = name, .affine = affine};
  l.out = shape_of(from == -2 ? last() : from);
  return push(l, from);
}

int SpecBuilder::layer(LayerKind kind, int from) {
  const LayerKindInfo info = layer_info(kind);
  if (info.fields != LayerFields::none)
    throw InternalError(fmt::format("SpecBuilder::layer: {} has attributes; use its own method", info.name));
  if (from == -2) from = last();
  const Shape in = shape_of(from);
  Layer l{.kind = kind};
  switch (info.shape) {
    case ShapeRule::same: l.out = in; break;
    case ShapeRule::channels: l.out = Shape{in.C, 1, 1}; break;
    case ShapeRule::flat: l.out = Shape{in.size(), 1, 1}; break;
    case ShapeRule::attributes: throw InternalError(fmt::format("SpecBuilder::layer: {} needs attributes", info.name));
  }
  l.inputs.assign(std::size_t(info.inputs), from);
  l.in = in;
  spec_.layers.push_back(std::move(l));
  return last();
}

int SpecBuilder::maxpool(int window, int stride, int from) {
  Layer l{.kind = LayerKind::maxpool, .kernel = window, .stride = stride, .pad = 0};
  const Shape in = shape_of(from == -2 ? last() : from);
  const Pool2dGeometry g{.N = 1, .C = in.C, .H = in.H, .W = in.W, .window = window, .stride = stride};
  g.validate();
  l.out = Shape{in.C, g.P(), g.Q()};
  return push(l, from);
}

int SpecBuilder::add(int a, int b) {
  Layer l{.kind = LayerKind::residual_add};
  l.inputs = {a, b};
  l.in = shape_of(a);
  l.out = l.in;
  if (!(shape_of(b) == l.in))
    throw UsageError("model", fmt::format("residual add of {} and {}", l.in.describe(), shape_of(b).describe()));
  spec_.layers.push_back(l);
  return last();
}

NetworkSpec SpecBuilder::finish() {
  spec_.validate();
  return spec_;
}

std::vector<LayerSlots> layer_slots(const NetworkSpec& spec) {
  std::vector<LayerSlots> out(spec.layers.size());
  const auto params = spec.params();
  for (int i = 0; i < int(params.size()); ++i) {
    LayerSlots& sl = out.at(std::size_t(params[std::size_t(i)].layer));
    switch (params[std::size_t(i)].role) {
      case ParamRole::weight: sl.weight = i; break;
      case ParamRole::bias: sl.bias = i; break;
      case ParamRole::bn_weight: sl.gamma = i; break;
      case ParamRole::bn_bias: sl.beta = i; break;
      case ParamRole::running_mean: sl.running_mean = i; break;
      case ParamRole::running_var: sl.running_var = i; break;
    }
  }
  return out;
}

}  // namespace wdlab

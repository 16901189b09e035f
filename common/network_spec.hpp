#pragma once
// NetworkSpec: the layer graph both backends consume (DESIGN.md, "One network description").
// Plain data: layers in topological order, each reading the outputs of earlier layers (or the
// network input, index −1). Parameters are named like PyTorch's state_dict.
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "common/geometry.hpp"
#include "common/layer_kinds.hpp"
#include "common/mlp_spec.hpp"

namespace wdlab {

std::string to_string(LayerKind k);  // layer_info(k).name

enum class Affine { off, on };  // BN γ/β (the paper and the official code: off)

struct Shape {
  int C = 1, H = 1, W = 1;
  int size() const { return C * H * W; }
  bool operator==(const Shape&) const = default;
  std::string describe() const;
};

struct Layer {
  LayerKind kind = LayerKind::relu;
  std::string name;         // parameter prefix ("features.0"); empty for parameterless layers
  std::vector<int> inputs;  // indices of earlier layers; −1 is the network input
  Shape in, out;
  Bias bias = Bias::off;    // dense, conv2d
  int kernel = 3, stride = 1, pad = 1;  // conv2d; maxpool uses kernel (window) and stride
  Affine affine = Affine::off;          // batchnorm
  double bn_eps = 1e-3;                 // TF default (the official code)
  double bn_momentum = 0.99;            // running ← m·running + (1−m)·batch

  /// The op's geometry at batch size N (conv2d / maxpool only).
  Conv2dGeometry conv_geometry(int N) const;
  Pool2dGeometry pool_geometry(int N) const;
  bool has_weights() const {
    const LayerFields f = layer_info(kind).fields;
    return f == LayerFields::dense || f == LayerFields::conv2d;
  }
};

enum class ParamRole { weight, bias, bn_weight, bn_bias, running_mean, running_var };

struct ParamInfo {
  std::string name;             // "features.0.weight"
  std::vector<std::int64_t> shape;  // PyTorch shape: conv [K,C,R,S], dense [out,in], vectors [n]
  int layer = 0;
  ParamRole role = ParamRole::weight;
  bool trainable() const { return role != ParamRole::running_mean && role != ParamRole::running_var; }
  std::int64_t numel() const;
};

struct NetworkSpec {
  std::string model;  // "mlp", "vgg16", "resnet32", ...
  Shape input;
  int classes = 10;
  std::vector<Layer> layers;

  std::vector<ParamInfo> params() const;
  std::int64_t num_trainable() const;
  /// Index of the layer that consumes layer i's output next (its BN, if any): used to decide
  /// whether a dense/conv layer is followed by BN (MATH.md §9.6).
  bool followed_by_bn(int i) const;
  std::string describe() const;  // one line per layer
  /// Throws UsageError if shapes do not chain or an input index is not earlier.
  void validate() const;
};

/// Where a layer's tensors sit in spec.params() (−1: absent); both backends index by it.
struct LayerSlots {
  int weight = -1, bias = -1, gamma = -1, beta = -1, running_mean = -1, running_var = -1;
};
/// One LayerSlots per layer of `spec`, indices into spec.params().
std::vector<LayerSlots> layer_slots(const NetworkSpec& spec);

/// Appends layers while tracking the current shape; the model zoo is written with it.
class SpecBuilder {
 public:
  SpecBuilder(std::string model, Shape input, int classes);
  int dense(const std::string& name, int out, Bias b, int from = -2);
  int conv(const std::string& name, int K, int kernel, int stride, int pad, Bias b, int from = -2);
  int batchnorm(const std::string& name, int from = -2);
  /// A layer of an attribute-free kind (layer_info(kind).fields == none), its output shape by
  /// the kind's shape rule; a join (2 inputs) reads `from` twice: use add() for two branches.
  int layer(LayerKind kind, int from = -2);
  int relu(int from = -2) { return layer(LayerKind::relu, from); }
  int maxpool(int window, int stride, int from = -2);
  int global_avgpool(int from = -2) { return layer(LayerKind::global_avgpool, from); }
  int flatten(int from = -2) { return layer(LayerKind::flatten, from); }
  int add(int a, int b);
  int last() const { return int(spec_.layers.size()) - 1; }
  Shape shape_of(int i) const;
  Affine affine = Affine::off;
  NetworkSpec finish();

 private:
  int push(Layer l, int from);
  NetworkSpec spec_;
};

}  // namespace wdlab

#pragma once
// The paper's networks as NetworkSpecs: MLPs (Fig. 5), VGG11/13/16/19 CIFAR variant with a single
// dense head (the official code), ResNet 6n+2 with a widen factor (ResNet32×4 = widths
// 64/128/256, 1×1 projection shortcuts). A width multiplier shrinks them for tests.
#include "common/network_spec.hpp"

namespace wdlab::zoo {

struct MlpOptions {
  int depth = 2;  // hidden layers
  int width = 1000;
  Activation activation = Activation::relu;
  Bias bias = Bias::on;
  Norm norm = Norm::none;
};
NetworkSpec mlp(Shape input, int classes, const MlpOptions& o);

struct ConvOptions {
  Norm norm = Norm::batchnorm;
  Bias bias = Bias::on;      // the official configs: use_bias true everywhere
  double width_mult = 1.0;   // channels scaled and rounded, at least 1
  Affine affine = Affine::off;
};
/// depth ∈ {11, 13, 16, 19}. Max-pools that would shrink the map below 1×1 are left out
/// (28×28 inputs keep four of the five).
NetworkSpec vgg(int depth, Shape input, int classes, const ConvOptions& o);
/// depth = 6n+2; widen multiplies the base widths 16/32/64.
NetworkSpec resnet(int depth, int widen, Shape input, int classes, const ConvOptions& o);
/// A small VGG-style BN convnet for CPU runs: [c,c,M,2c,2c,M] then GAP... see model_zoo.cpp.
NetworkSpec small_convnet(Shape input, int classes, int base_width, const ConvOptions& o);

/// By name: "mlp", "vgg11".."vgg19", "resnet{6n+2}", "convnet"; throws UsageError on others.
struct ModelOptions {
  std::string name = "mlp";
  MlpOptions mlp;
  ConvOptions conv;
  int widen = 1;        // resnet
  int base_width = 32;  // convnet
};
NetworkSpec build(const ModelOptions& m, Shape input, int classes);

}  // namespace wdlab::zoo

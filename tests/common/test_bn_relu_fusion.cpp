// Which ReLUs both backends compute inside the BN before it (common/bn_relu_fusion.hpp): forward
// where the ReLU reads only that BN, backward only where, in addition, nothing else reads BN's
// output (its cotangent is then the ReLU's alone).
#include <doctest/doctest.h>

#include "common/model_zoo.hpp"
#include "common/bn_relu_fusion.hpp"

using namespace wdlab;

namespace {

Layer layer(LayerKind kind, std::vector<int> inputs) {
  Layer l;
  l.kind = kind;
  l.inputs = std::move(inputs);
  l.in = l.out = Shape{2, 3, 3};
  return l;
}

int count(const NetworkSpec& s, bool (*pred)(const NetworkSpec&, int)) {
  int n = 0;
  for (int i = -1; i <= int(s.layers.size()); ++i) n += pred(s, i);  // out-of-range indices included
  return n;
}

}  // namespace

TEST_CASE("BN+ReLU fusion: forward where the ReLU reads only the BN before it, backward where it is BN's only reader") {
  NetworkSpec s;
  s.input = Shape{2, 3, 3};
  // 0 BN ← input; 1 ReLU ← 0 (BN 0's only reader); 2 BN ← 1; 3 ReLU ← 2; 4 add(2, 3), so BN 2
  // has a second reader; 5 ReLU ← 4 (not a BN); 6 BN ← 5; 7 tanh ← 6; 8 ReLU ← 6 (a BN, but
  // not the layer just before it).
  s.layers = {layer(LayerKind::batchnorm, {-1}), layer(LayerKind::relu, {0}),
              layer(LayerKind::batchnorm, {1}),  layer(LayerKind::relu, {2}),
              layer(LayerKind::residual_add, {2, 3}), layer(LayerKind::relu, {4}),
              layer(LayerKind::batchnorm, {5}),  layer(LayerKind::tanh, {6}),
              layer(LayerKind::relu, {6})};
  CHECK(relu_fused_into_bn(s, 1));
  CHECK(relu_backward_fused(s, 1));
  CHECK(relu_fused_into_bn(s, 3));    // the forward does not care who else reads BN 2
  CHECK_FALSE(relu_backward_fused(s, 3));  // its cotangent adds the residual's term
  CHECK_FALSE(relu_fused_into_bn(s, 5));   // reads an add
  CHECK_FALSE(relu_fused_into_bn(s, 7));   // a tanh
  CHECK_FALSE(relu_fused_into_bn(s, 8));   // reads BN 6, but not the layer just before it
  CHECK_FALSE(relu_backward_fused(s, 8));
  CHECK_FALSE(relu_fused_into_bn(s, 0));   // a BN
  CHECK_FALSE(relu_fused_into_bn(s, -1));
  CHECK_FALSE(relu_fused_into_bn(s, 9));   // past the end
  CHECK(count(s, relu_fused_into_bn) == 2);
  CHECK(count(s, relu_backward_fused) == 1);
}

TEST_CASE("BN+ReLU fusion in the paper's networks: every VGG BN, ResNet's BN before a ReLU but not before an add") {
  zoo::ConvOptions o;
  o.width_mult = 0.125;
  const NetworkSpec vgg = zoo::vgg(11, Shape{3, 32, 32}, 10, o);
  int bns = 0;
  for (const Layer& l : vgg.layers) bns += l.kind == LayerKind::batchnorm;
  CHECK(bns == 8);
  CHECK(count(vgg, relu_fused_into_bn) == 8);
  CHECK(count(vgg, relu_backward_fused) == 8);
  // ResNet-8 (one block per stage): the stem's BN and each block's first BN are read by a ReLU
  // alone (4); each block's second BN and the projection shortcuts' BNs feed an add (5 BNs).
  const NetworkSpec rn = zoo::resnet(8, 1, Shape{3, 32, 32}, 10, o);
  bns = 0;
  for (const Layer& l : rn.layers) bns += l.kind == LayerKind::batchnorm;
  CHECK(bns == 9);
  CHECK(count(rn, relu_fused_into_bn) == 4);
  CHECK(count(rn, relu_backward_fused) == 4);
  // Control: without BN nothing is fused.
  o.norm = Norm::none;
  CHECK(count(zoo::vgg(11, Shape{3, 32, 32}, 10, o), relu_fused_into_bn) == 0);
}

#include "common/model_zoo.hpp"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "common/errors.hpp"

namespace wdlab::zoo {

namespace {
int scaled(int channels, double mult) { return std::max(1, int(std::lround(channels * mult))); }
}  // namespace

NetworkSpec mlp(Shape input, int classes, const MlpOptions& o) {
  if (o.depth < 0) throw UsageError("model.depth", fmt::format("must be >= 0, got {}", o.depth));
  if (o.width < 1) throw UsageError("model.width", fmt::format("must be >= 1, got {}", o.width));
  SpecBuilder b("mlp", input, classes);
  int from = -1;
  if (!(input.H == 1 && input.W == 1)) from = b.flatten(-1);
  for (int l = 0; l < o.depth; ++l) {
    b.dense(fmt::format("fc{}", l), o.width, o.bias, from);
    if (o.norm == Norm::batchnorm) b.batchnorm(fmt::format("bn{}", l));
    if (o.activation == Activation::relu) b.relu();
    from = b.last();
  }
  b.dense(fmt::format("fc{}", o.depth), classes, o.bias, from);
  return b.finish();
}

NetworkSpec vgg(int depth, Shape input, int classes, const ConvOptions& o) {
  // Convs per block for VGG11/13/16/19 (Simonyan & Zisserman, configurations A, B, D, E).
  std::vector<int> per_block;
  switch (depth) {
    case 11: per_block = {1, 1, 2, 2, 2}; break;
    case 13: per_block = {2, 2, 2, 2, 2}; break;
    case 16: per_block = {2, 2, 3, 3, 3}; break;
    case 19: per_block = {2, 2, 4, 4, 4}; break;
    default: throw UsageError("model", fmt::format("vgg depth must be 11, 13, 16 or 19, got {}", depth));
  }
  const int widths[5] = {64, 128, 256, 512, 512};
  SpecBuilder b("vgg" + std::to_string(depth), input, classes);
  b.affine = o.affine;
  int idx = 0;  // torchvision numbering: every layer of `features` takes the next index
  int from = -1;
  for (int blk = 0; blk < 5; ++blk) {
    for (int c = 0; c < per_block[blk]; ++c) {
      b.conv(fmt::format("features.{}", idx++), scaled(widths[blk], o.width_mult), 3, 1, 1, o.bias, from);
      if (o.norm == Norm::batchnorm) b.batchnorm(fmt::format("features.{}", idx++));
      b.relu();
      ++idx;
      from = b.last();
    }
    const Shape s = b.shape_of(from);
    if (s.H >= 2 && s.W >= 2) {  // 28×28 inputs reach 1×1 after four pools
      from = b.maxpool(2, 2);
    }
    ++idx;
  }
  from = b.flatten(from);
  b.dense("classifier", classes, o.bias, from);
  return b.finish();
}

NetworkSpec resnet(int depth, int widen, Shape input, int classes, const ConvOptions& o) {
  if (depth < 8 || (depth - 2) % 6 != 0)
    throw UsageError("model", fmt::format("resnet depth must be 6n+2 with n >= 1, got {}", depth));
  if (widen < 1) throw UsageError("model.widen", fmt::format("must be >= 1, got {}", widen));
  const int n = (depth - 2) / 6;
  SpecBuilder b(fmt::format("resnet{}x{}", depth, widen), input, classes);
  b.affine = o.affine;
  const bool bn = o.norm == Norm::batchnorm;
  auto conv_bn = [&](const std::string& conv_name, const std::string& bn_name, int K, int k,
                     int stride, int pad, int from) {
    int out = b.conv(conv_name, K, k, stride, pad, o.bias, from);
    if (bn) out = b.batchnorm(bn_name);
    return out;
  };
  int x = conv_bn("conv1", "bn1", scaled(16 * widen, o.width_mult), 3, 1, 1, -1);
  x = b.relu(x);
  const int base[3] = {16, 32, 64};
  for (int stage = 0; stage < 3; ++stage) {
    const int K = scaled(base[stage] * widen, o.width_mult);
    for (int blk = 0; blk < n; ++blk) {
      const std::string p = fmt::format("layer{}.{}.", stage + 1, blk);
      const int stride = (stage > 0 && blk == 0) ? 2 : 1;
      int y = conv_bn(p + "conv1", p + "bn1", K, 3, stride, 1, x);
      y = b.relu(y);
      y = conv_bn(p + "conv2", p + "bn2", K, 3, 1, 1, y);
      int shortcut = x;
      if (stride != 1 || !(b.shape_of(x).C == K))  // 1×1 projection (+BN), as the official code
        shortcut = conv_bn(p + "shortcut.0", p + "shortcut.1", K, 1, stride, 0, x);
      x = b.relu(b.add(y, shortcut));
    }
  }
  x = b.global_avgpool(x);
  b.dense("fc", classes, o.bias, x);
  return b.finish();
}

NetworkSpec small_convnet(Shape input, int classes, int base_width, const ConvOptions& o) {
  SpecBuilder b("convnet", input, classes);
  b.affine = o.affine;
  const bool bn = o.norm == Norm::batchnorm;
  int from = -1, idx = 0;
  for (int blk = 0; blk < 2; ++blk) {
    for (int c = 0; c < 2; ++c) {
      b.conv(fmt::format("features.{}", idx++), base_width << blk, 3, 1, 1, o.bias, from);
      if (bn) b.batchnorm(fmt::format("features.{}", idx++));
      from = b.relu();
      ++idx;
    }
    from = b.maxpool(2, 2);
    ++idx;
  }
  from = b.flatten(from);
  b.dense("classifier", classes, o.bias, from);
  return b.finish();
}

NetworkSpec build(const ModelOptions& m, Shape input, int classes) {
  const std::string& n = m.name;
  if (n == "mlp") return mlp(input, classes, m.mlp);
  if (n == "convnet") return small_convnet(input, classes, m.base_width, m.conv);
  if (n.rfind("vgg", 0) == 0) {
    try {
      return vgg(std::stoi(n.substr(3)), input, classes, m.conv);
    } catch (const std::invalid_argument&) {
    }
  }
  if (n.rfind("resnet", 0) == 0) {
    try {
      return resnet(std::stoi(n.substr(6)), m.widen, input, classes, m.conv);
    } catch (const std::invalid_argument&) {
    }
  }
  throw UsageError("model", fmt::format("unknown model '{}' (mlp, convnet, vgg11|13|16|19, resnet<6n+2>)", n));
}

}  // namespace wdlab::zoo

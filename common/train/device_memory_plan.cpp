#include "common/train/device_memory_plan.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "common/reduction_layout.hpp"

namespace wdlab::train {

namespace {

constexpr std::int64_t kFloat = 4, kDouble = 8, kInt = 4;

std::int64_t numel(const Shape& s, int N) { return std::int64_t(N) * s.C * s.H * s.W; }

/// K-FAC's input-side dimension of a block: the patch (or input) length, plus one for a bias.
std::int64_t a_dim(const Layer& l) {
  const std::int64_t bias = l.bias == Bias::on ? 1 : 0;
  if (l.kind == LayerKind::conv2d) return std::int64_t(l.in.C) * l.kernel * l.kernel + bias;
  return std::int64_t(l.in.C) * l.in.H * l.in.W + bias;
}

}  // namespace

std::int64_t DeviceMemoryPlan::total() const {
  std::int64_t t = 0;
  for (const auto& l : lines) t += l.bytes;
  return t;
}

std::string DeviceMemoryPlan::describe() const {
  std::string s;
  for (const auto& l : lines) s += fmt::format("  {:<44} {:>10.3f} GiB\n", l.what, double(l.bytes) / (1 << 30));
  s += fmt::format("  {:<44} {:>10.3f} GiB\n", "total", double(total()) / (1 << 30));
  return s;
}

std::int64_t reduction_scratch_doubles(const NetworkSpec& spec, int N, bool backward) {
  std::int64_t partials = 1;
  for (const Layer& l : spec.layers) {
    const std::int64_t m = std::int64_t(N) * l.out.H * l.out.W;
    switch (l.kind) {
      case LayerKind::batchnorm:  // Σdy, Σdy⊙x̂ in one walk (also the statistics' single sums)
        if (backward) partials = std::max(partials, reduction::bn_backward_partials(l.out.C, m));
        break;
      case LayerKind::dense:
      case LayerKind::conv2d:  // bias gradients
        if (backward) partials = std::max(partials, reduction::channel_partials(l.out.C, m));
        break;
      // No per-channel sums; no default: a new kind is a compile error until it is listed.
      case LayerKind::relu:
      case LayerKind::maxpool:
      case LayerKind::global_avgpool:
      case LayerKind::flatten:
      case LayerKind::residual_add:
      case LayerKind::tanh: break;
    }
  }
  for (const ParamInfo& p : spec.params()) partials = std::max(partials, reduction::flat_partials(p.numel()));
  return partials;
}

LayerExtraBuffers layer_extra_buffers(const Layer& l, int N, bool backward) {
  const std::int64_t n = numel(l.out, N);
  LayerExtraBuffers x;
  switch (l.kind) {
    case LayerKind::batchnorm:
      if (!backward) break;  // evaluation normalizes with the running statistics
      x.bn_statistics = 3 * std::int64_t(l.out.C);
      if (l.affine == Affine::on) x.xhat = n;
      break;
    case LayerKind::maxpool: x.argmax = n; break;
    // Output and cotangent only. No default: a new kind must decide its buffers here.
    case LayerKind::dense:
    case LayerKind::conv2d:
    case LayerKind::relu:
    case LayerKind::global_avgpool:
    case LayerKind::flatten:
    case LayerKind::residual_add:
    case LayerKind::tanh: break;
  }
  return x;
}

std::int64_t activation_bytes(const NetworkSpec& spec, int N, bool backward) {
  // input, labels, per-example loss and hits
  std::int64_t b = numel(spec.input, N) * kFloat + N * kInt + 2 * std::int64_t(N) * kDouble;
  std::int64_t max_c = 1;
  for (const Layer& l : spec.layers) {
    const std::int64_t n = numel(l.out, N);
    b += n * kFloat;                // output
    if (backward) b += n * kFloat;  // cotangent
    const LayerExtraBuffers x = layer_extra_buffers(l, N, backward);
    b += x.bn_statistics * kDouble + x.xhat * kFloat + x.argmax * kInt;
    if (x.bn_statistics > 0) max_c = std::max<std::int64_t>(max_c, l.out.C);
  }
  b += reduction_scratch_doubles(spec, N, backward) * kDouble;
  if (backward) b += 2 * max_c * kDouble;  // BN backward sums
  return b;
}

DeviceMemoryPlan plan_device_memory(const NetworkSpec& spec, const DeviceMemoryInput& in) {
  DeviceMemoryPlan p;
  std::int64_t params = 0, trainable = 0;
  for (const ParamInfo& info : spec.params()) {
    params += info.numel();
    if (info.trainable()) trainable += info.numel();
  }
  p.lines.push_back({"parameters (with BN running statistics)", params * kFloat});
  p.lines.push_back({"gradients", trainable * kFloat});
  if (optim::is_kfac(in.optimizer)) {
    // Per block A, S, their damped inverses and the step's estimates (6 matrices), the
    // data-pass initialization's sums (2 more, while it runs), momentum and directions, the
    // block-gradient scratch (3 × the largest [dW db]) and the largest conv's patch matrix.
    std::int64_t blocks = 0, init = 0, max_g = 0, patches = 0;
    for (const Layer& l : spec.layers) {
      if (!l.has_weights()) continue;
      const std::int64_t a = a_dim(l), s = l.out.C;
      blocks += 3 * (a * a + s * s);
      init += a * a + s * s;
      max_g = std::max(max_g, a * s);
      if (l.kind == LayerKind::conv2d)
        patches = std::max(patches, a * std::max(in.train_batch, 1) * std::int64_t(l.out.H) * l.out.W);
    }
    p.lines.push_back({"K-FAC factors, inverses, estimates", blocks * kFloat});
    p.lines.push_back({"K-FAC data-pass sums (factor_init data_pass)", init * kFloat});
    p.lines.push_back({"K-FAC momentum and directions", 2 * trainable * kFloat});
    p.lines.push_back({"K-FAC scratch (block gradients, conv patches)", (3 * max_g + patches) * kFloat});
  } else {
    p.lines.push_back({fmt::format("{} state ({} per parameter)", optim::to_string(in.optimizer),
                                   optim::param_state_tensors(in.optimizer)),
                       optim::param_state_tensors(in.optimizer) * trainable * kFloat});
  }
  if (in.snapshot) {
    const std::int64_t state = std::max(optim::param_state_tensors(in.optimizer), 1) * trainable;
    p.lines.push_back({"--on-nonfinite skip: copy of parameters and state", (params + state) * kFloat});
  }
  p.lines.push_back({fmt::format("train activations (batch {})", in.train_batch),
                     activation_bytes(spec, in.train_batch, true)});
  p.lines.push_back({fmt::format("eval activations (batch {}, forward only)", in.eval_batch),
                     activation_bytes(spec, in.eval_batch, false)});
  if (in.resident_examples > 0)
    p.lines.push_back({fmt::format("resident data ({} images)", in.resident_examples),
                       in.resident_examples * (numel(spec.input, 1) * kFloat + kInt)});
  p.lines.push_back({"cuDNN workspace (limit)", std::int64_t(in.conv_workspace_limit)});
  return p;
}

}  // namespace wdlab::train

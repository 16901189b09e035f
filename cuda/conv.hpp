#pragma once
// cuDNN 2-D convolution passes (cross-correlation, PyTorch's conv2d), float32, NCHW/KCRS,
// the same names and argument order as reference/ops/conv2d.hpp with the context first:
//   y  = conv(x, w)                      conv2d_fprop
//   dx (=|+=) ∂⟨dy, y⟩/∂x                 conv2d_bprop_data
//   dw = ∂⟨dy, y⟩/∂w                      conv2d_bprop_filter   (the bias is cuda/ops)
// Descriptors come from conv_descriptor_params(geometry) only. Algorithms are chosen once per
// shape by ConvSettings' policy (cuda/conv_plan.hpp) and cached with their determinism. Uses the
// legacy convolution API, deprecated but complete in cuDNN 9 (no warnings unless
// CUDNN_WARN_DEPRECATED); the graph API is the route to fusion later.
#include <cstddef>

#include "common/geometry.hpp"
#include "cuda/context.hpp"
#include "cuda/conv_plan.hpp"
#include "cuda/kernels/hd.hpp"

namespace wdlab::cuda {

struct ConvSettings {
  MathMode math = MathMode::fp32;
  AlgoPolicy policy = AlgoPolicy::fastest;
  std::size_t workspace_limit = std::size_t(1) << 30;  // per call, bytes
  AlgoCache cache;
};

void conv2d_fprop(Context& ctx, ConvSettings& settings, const Conv2dGeometry& g, const float* x,
                  const float* w, float* y);
void conv2d_bprop_data(Context& ctx, ConvSettings& settings, const Conv2dGeometry& g,
                       const float* dy, const float* w, float* dx, kernels::Accumulate mode);
void conv2d_bprop_filter(Context& ctx, ConvSettings& settings, const Conv2dGeometry& g,
                         const float* x, const float* dy, float* dw);

}  // namespace wdlab::cuda

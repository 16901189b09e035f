// CudaBackend's one switch over layer kinds: forward, loss, backward, running statistics.
// Activations are NCHW (the reference's column-per-example matrices); dense layers see
// x as in×N column-major and keep W in PyTorch's row-major [out, in], which cuBLAS reads as the
// column-major in×out matrix Wᶜ = Wᵀ:
//   y  = W x      = (Wᶜ)ᵀ x      sgemm(T, N, out, N, in)
//   dW = dy xᵀ    ⇔ dWᶜ = x dyᵀ   sgemm(N, T, in, out, N)
//   dx = Wᵀ dy    = Wᶜ dy        sgemm(N, N, in, N, out)
#include <cublas_v2.h>
#include <fmt/format.h>

#include <algorithm>

#include "common/errors.hpp"
#include "common/train/device_memory_plan.hpp"
#include "cuda/backend.hpp"
#include "cuda/backend_activations.hpp"
#include "common/bn_relu_fusion.hpp"
#include "cuda/kernels/batchnorm.hpp"
#include "cuda/kernels/elementwise.hpp"
#include "cuda/kernels/launch.hpp"
#include "cuda/kernels/measure.hpp"
#include "cuda/kernels/pool.hpp"
#include "cuda/reductions.hpp"

namespace wdlab::cuda {

using kernels::Accumulate;
using kernels::Index;
using kernels::launch_device;

namespace {

Index numel(const Shape& s, int N) { return Index(N) * s.C * s.H * s.W; }

kernels::PoolShape pool_shape(const Pool2dGeometry& g) {
  return kernels::PoolShape{g.C, g.H, g.W, g.P(), g.Q(), g.window, g.stride};
}

}  // namespace

CudaBackend::Activations& CudaBackend::activations(int N, ActivationUse use) {
  WDLAB_CHECK(N >= 1, "empty batch");
  std::unique_ptr<Activations>& slot = acts_[std::size_t(use)];
  if (slot && slot->N == N) return *slot;
  slot.reset();  // free first: the device may not hold the old and the new set together
  const bool backward = use == ActivationUse::train;
  auto a = std::make_unique<Activations>();
  a->N = N;
  a->input = DeviceBuffer<float>(std::size_t(numel(spec_.input, N)));
  a->labels = DeviceBuffer<std::int32_t>(std::size_t(N));
  const std::size_t L = spec_.layers.size();
  a->out.resize(L);
  a->dout.resize(L);
  a->xhat.resize(L);
  a->bn.resize(L);
  a->argmax.resize(L);
  Index max_c = 1;
  for (std::size_t i = 0; i < L; ++i) {
    const Layer& l = spec_.layers[i];
    const std::size_t n = std::size_t(numel(l.out, N));
    a->out[i] = DeviceBuffer<float>(n);
    if (backward) a->dout[i] = DeviceBuffer<float>(n);
    // The memory plan's list (train::layer_extra_buffers), so the plan and the allocation agree.
    const train::LayerExtraBuffers x = train::layer_extra_buffers(l, N, backward);
    if (x.bn_statistics > 0) {
      a->bn[i] = DeviceBuffer<double>(std::size_t(x.bn_statistics));
      max_c = std::max<Index>(max_c, l.out.C);
    }
    if (x.xhat > 0) a->xhat[i] = DeviceBuffer<float>(std::size_t(x.xhat));
    if (x.argmax > 0) a->argmax[i] = DeviceBuffer<std::int32_t>(std::size_t(x.argmax));
  }
  // Reduction scratch: the memory plan's count (BN backward sums, bias gradients, parameter
  // statistics; common/reduction_layout.hpp), so the plan and the allocation cannot disagree.
  a->partial = DeviceBuffer<double>(std::size_t(train::reduction_scratch_doubles(spec_, N, backward)));
  if (backward) a->sums = DeviceBuffer<double>(std::size_t(2 * max_c));
  a->loss = DeviceBuffer<double>(std::size_t(N));
  a->correct = DeviceBuffer<double>(std::size_t(N));
  a->dout_written.assign(L, 0);
  slot = std::move(a);
  return *slot;
}

const float* CudaBackend::input_of(const Activations& a, int layer, int which) const {
  const int src = spec_.layers[std::size_t(layer)].inputs[std::size_t(which)];
  return src < 0 ? a.input.data() : a.out[std::size_t(src)].data();
}

void CudaBackend::forward(Activations& a, bool train) {
  const cudaStream_t s = ctx_->stream();
  const int N = a.N;
  for (int i = 0; i < int(spec_.layers.size()); ++i) {
    const Layer& l = spec_.layers[std::size_t(i)];
    const LayerSlots& sl = slots_[std::size_t(i)];
    const float* x = input_of(a, i);
    float* y = a.out[std::size_t(i)].data();
    const Index n_out = numel(l.out, N);
    switch (l.kind) {
      case LayerKind::dense: {
        const int in = l.in.size(), out = l.out.C;
        const float one = 1.0f, zero = 0.0f;
        WDLAB_CUBLAS_CHECK(cublasSgemm(ctx_->cublas(), CUBLAS_OP_T, CUBLAS_OP_N, out, N, in, &one,
                                       params_[std::size_t(sl.weight)].data(), in, x, in, &zero, y, out));
        if (sl.bias >= 0)
          launch_device(s, n_out, kernels::BiasAdd{params_[std::size_t(sl.bias)].data(), y, out, 1});
        break;
      }
      case LayerKind::conv2d: {
        const Conv2dGeometry g = l.conv_geometry(N);
        conv2d_fprop(*ctx_, conv_, g, x, params_[std::size_t(sl.weight)].data(), y);
        if (sl.bias >= 0)
          launch_device(s, n_out, kernels::BiasAdd{params_[std::size_t(sl.bias)].data(), y, g.K,
                                                   Index(g.P()) * g.Q()});
        break;
      }
      case LayerKind::batchnorm: {
        const Index C = l.out.C, HW = Index(l.out.H) * l.out.W;
        const float* gamma = sl.gamma >= 0 ? params_[std::size_t(sl.gamma)].data() : nullptr;
        const float* beta = sl.beta >= 0 ? params_[std::size_t(sl.beta)].data() : nullptr;
        // A ReLU reading only this BN output is computed in the same pass (relu_fused_into_bn).
        float* relu_out = relu_fused_into_bn(spec_, i + 1) ? a.out[std::size_t(i + 1)].data() : nullptr;
        if (!train) {
          launch_device(s, n_out, kernels::BnEvalForward{x, params_[std::size_t(sl.running_mean)].data(),
                                                         params_[std::size_t(sl.running_var)].data(),
                                                         gamma, beta, y, C, HW, float(l.bn_eps), relu_out});
          break;
        }
        if (Index(N) * HW < 2)
          throw PreconditionError(fmt::format("batchnorm layer {}: batch statistics need N·H·W >= 2", i));
        double* mean = a.bn[std::size_t(i)].data();
        double* var = mean + C;
        double* invstd = mean + 2 * C;
        const double m = double(N) * double(HW);
        channel_sums(s, x, nullptr, nullptr, N, C, HW, kernels::ChannelTerm::value, 1.0 / m, mean,
                     a.partial.data());
        channel_sums(s, x, nullptr, mean, N, C, HW, kernels::ChannelTerm::centred_square, 1.0 / m,
                     var, a.partial.data());
        launch_device(s, C, kernels::BnInvStd{var, invstd, l.bn_eps});
        float* xhat = gamma ? a.xhat[std::size_t(i)].data() : nullptr;
        launch_device(s, n_out, kernels::BnNormalize{x, mean, invstd, gamma, beta, xhat, y, C, HW, relu_out});
        break;
      }
      case LayerKind::relu:
        if (!relu_fused_into_bn(spec_, i)) launch_device(s, n_out, kernels::ReluForward{x, y});
        break;
      case LayerKind::maxpool:
        launch_device(s, n_out, kernels::MaxPoolForward{x, y, a.argmax[std::size_t(i)].data(),
                                                        pool_shape(l.pool_geometry(N))});
        break;
      case LayerKind::global_avgpool:
        launch_device(s, n_out, kernels::GlobalAvgPoolForward{x, y, Index(l.in.H) * l.in.W});
        break;
      case LayerKind::flatten:
        WDLAB_CUDA_CHECK(cudaMemcpyAsync(y, x, std::size_t(n_out) * sizeof(float),
                                         cudaMemcpyDeviceToDevice, s));
        break;
      case LayerKind::residual_add:
        launch_device(s, n_out, kernels::ResidualAdd{x, input_of(a, i, 1), y});
        break;
      case LayerKind::tanh: launch_device(s, n_out, kernels::TanhForward{x, y}); break;
    }
  }
}

void CudaBackend::loss_and_gradient(Activations& a, bool want_gradient) {
  const cudaStream_t s = ctx_->stream();
  const Index K = spec_.classes, N = a.N;
  const std::size_t last = spec_.layers.size() - 1;
  launch_device(s, N, kernels::SoftmaxCrossEntropy{a.out[last].data(), a.labels.data(), nullptr,
                                                   want_gradient ? a.dout[last].data() : nullptr,
                                                   a.loss.data(), a.correct.data(), K, N});
  launch_device(s, 1, kernels::LossTotals{a.loss.data(), a.correct.data(), scalars_.data(), N});
}

void CudaBackend::backward(Activations& a, BnPass bn) {
  const cudaStream_t s = ctx_->stream();
  const int N = a.N;
  const int L = int(spec_.layers.size());
  std::fill(a.dout_written.begin(), a.dout_written.end(), 0);
  a.dout_written[std::size_t(L - 1)] = 1;  // the loss wrote dlogits
  a.dinput_written = 0;
  // Where a cotangent for layer `src` goes and whether it adds to one already there (fan-out).
  auto target = [&](int src, float** p, Accumulate* mode) {
    if (src < 0) {  // the input: only a capture wants its gradient (no optimizer does)
      if (a.dinput.empty()) return false;
      *p = a.dinput.data();
      *mode = a.dinput_written ? Accumulate::add : Accumulate::overwrite;
      a.dinput_written = 1;
      return true;
    }
    *p = a.dout[std::size_t(src)].data();
    *mode = a.dout_written[std::size_t(src)] ? Accumulate::add : Accumulate::overwrite;
    a.dout_written[std::size_t(src)] = 1;
    return true;
  };
  for (int i = L - 1; i >= 0; --i) {
    const Layer& l = spec_.layers[std::size_t(i)];
    const LayerSlots& sl = slots_[std::size_t(i)];
    // A BN whose only reader is the ReLU after it (relu_backward_fused) starts from that ReLU's
    // cotangent dr and applies the ReLU's mask in its own kernels: dŷ = dr ⊙ 1[y > 0].
    const bool relu_after = l.kind == LayerKind::batchnorm && relu_backward_fused(spec_, i + 1);
    const int dy_of = relu_after ? i + 1 : i;
    if (!a.dout_written[std::size_t(dy_of)]) {
      // Output unused downstream: its parameters get zero gradients, as in the reference.
      for (const int t : {sl.weight, sl.bias, sl.gamma, sl.beta})
        if (t >= 0) grads_[std::size_t(t)].fill_zero(s);
      continue;
    }
    const float* dy = a.dout[std::size_t(dy_of)].data();
    const float* x = input_of(a, i);
    const Index n_in = numel(l.in, N);
    float* dx = nullptr;
    Accumulate mode = Accumulate::overwrite;
    switch (l.kind) {
      case LayerKind::dense: {
        const int in = l.in.size(), out = l.out.C;
        const float one = 1.0f, zero = 0.0f;
        WDLAB_CUBLAS_CHECK(cublasSgemm(ctx_->cublas(), CUBLAS_OP_N, CUBLAS_OP_T, in, out, N, &one, x,
                                       in, dy, out, &zero, grads_[std::size_t(sl.weight)].data(), in));
        if (sl.bias >= 0)
          channel_sums_to_float(s, dy, N, out, 1, grads_[std::size_t(sl.bias)].data(),
                                Accumulate::overwrite, a.partial.data());
        if (target(l.inputs[0], &dx, &mode)) {
          const float beta = mode == Accumulate::add ? 1.0f : 0.0f;
          WDLAB_CUBLAS_CHECK(cublasSgemm(ctx_->cublas(), CUBLAS_OP_N, CUBLAS_OP_N, in, N, out, &one,
                                         params_[std::size_t(sl.weight)].data(), in, dy, out, &beta,
                                         dx, in));
        }
        break;
      }
      case LayerKind::conv2d: {
        const Conv2dGeometry g = l.conv_geometry(N);
        conv2d_bprop_filter(*ctx_, conv_, g, x, dy, grads_[std::size_t(sl.weight)].data());
        if (sl.bias >= 0)
          channel_sums_to_float(s, dy, N, g.K, Index(g.P()) * g.Q(),
                                grads_[std::size_t(sl.bias)].data(), Accumulate::overwrite,
                                a.partial.data());
        if (target(l.inputs[0], &dx, &mode))
          conv2d_bprop_data(*ctx_, conv_, g, dy, params_[std::size_t(sl.weight)].data(), dx, mode);
        break;
      }
      case LayerKind::batchnorm: {
        const Index C = l.out.C, HW = Index(l.out.H) * l.out.W, m = Index(N) * HW;
        const float* gamma = sl.gamma >= 0 ? params_[std::size_t(sl.gamma)].data() : nullptr;
        // Fused ReLU: BN's output y (the mask's input), and where to store dŷ for a capture.
        const float* relu_in = relu_after ? a.out[std::size_t(i)].data() : nullptr;
        float* keep = relu_after && a.kept == CotangentsKept::every_layer ? a.dout[std::size_t(i)].data() : nullptr;
        if (keep) a.dout_written[std::size_t(i)] = 1;
        if (bn == BnPass::running) {  // measure(): no γ/β gradients wanted, x̂ was not stored
          if (keep) launch_device(s, numel(l.out, N), kernels::ReluBackward{relu_in, dy, keep, Accumulate::overwrite});
          if (target(l.inputs[0], &dx, &mode))
            launch_device(s, n_in, kernels::BnEvalBackward{dy, params_[std::size_t(sl.running_var)].data(),
                                                           gamma, dx, C, HW, float(l.bn_eps), mode, relu_in});
          break;
        }
        const float* xhat = gamma ? a.xhat[std::size_t(i)].data() : a.out[std::size_t(i)].data();
        double* sum_dy = a.sums.data();
        double* sum_dy_xhat = sum_dy + C;
        if (relu_after) {  // both sums in one walk over dr, y, x̂ (kernels::BnReluPartialSums)
          bn_relu_backward_sums(s, dy, relu_in, xhat, keep, N, C, HW, a.sums.data(), a.partial.data());
        } else {
          channel_sums(s, dy, nullptr, nullptr, N, C, HW, kernels::ChannelTerm::value, 1.0, sum_dy,
                       a.partial.data());
          channel_sums(s, dy, xhat, nullptr, N, C, HW, kernels::ChannelTerm::product, 1.0,
                       sum_dy_xhat, a.partial.data());
        }
        if (gamma) {
          launch_device(s, C, kernels::SumPartialsToFloat{sum_dy_xhat, grads_[std::size_t(sl.gamma)].data(),
                                                          1, Accumulate::overwrite});
          launch_device(s, C, kernels::SumPartialsToFloat{sum_dy, grads_[std::size_t(sl.beta)].data(),
                                                          1, Accumulate::overwrite});
        }
        if (target(l.inputs[0], &dx, &mode))
          launch_device(s, n_in, kernels::BnBackward{dy, xhat, a.bn[std::size_t(i)].data() + 2 * C,
                                                     sum_dy, sum_dy_xhat, gamma, dx, C, HW, m, mode, relu_in});
        break;
      }
      case LayerKind::relu:
        if (relu_backward_fused(spec_, i)) break;  // BN's backward, next, applies the mask
        if (target(l.inputs[0], &dx, &mode))
          launch_device(s, n_in, kernels::ReluBackward{x, dy, dx, mode});
        break;
      case LayerKind::maxpool:
        if (target(l.inputs[0], &dx, &mode))
          launch_device(s, n_in, kernels::MaxPoolBackward{dy, a.argmax[std::size_t(i)].data(), dx,
                                                          pool_shape(l.pool_geometry(N)), mode});
        break;
      case LayerKind::global_avgpool:
        if (target(l.inputs[0], &dx, &mode))
          launch_device(s, n_in, kernels::GlobalAvgPoolBackward{dy, dx, Index(l.in.H) * l.in.W, mode});
        break;
      case LayerKind::flatten:
        if (target(l.inputs[0], &dx, &mode))
          launch_device(s, n_in, kernels::AccumulateInto{dy, dx, mode});
        break;
      case LayerKind::residual_add:
        for (int which = 0; which < 2; ++which)
          if (target(l.inputs[std::size_t(which)], &dx, &mode))
            launch_device(s, n_in, kernels::AccumulateInto{dy, dx, mode});
        break;
      case LayerKind::tanh:
        if (target(l.inputs[0], &dx, &mode))
          launch_device(s, n_in, kernels::TanhBackward{a.out[std::size_t(i)].data(), dy, dx, mode});
        break;
    }
  }
}

void CudaBackend::running_stats_update(Activations& a) {
  const std::uint32_t* skip = &scalars_.data()->skip;
  for (int i = 0; i < int(spec_.layers.size()); ++i) {
    const Layer& l = spec_.layers[std::size_t(i)];
    if (l.kind != LayerKind::batchnorm) continue;
    const LayerSlots& sl = slots_[std::size_t(i)];
    const Index C = l.out.C, m = Index(a.N) * l.out.H * l.out.W;
    const double* mean = a.bn[std::size_t(i)].data();
    launch_device(ctx_->stream(), C,
                  kernels::BnRunningUpdate{mean, mean + C, params_[std::size_t(sl.running_mean)].data(),
                                           params_[std::size_t(sl.running_var)].data(), skip,
                                           float(l.bn_momentum), m});
  }
}

}  // namespace wdlab::cuda

// Capturer::capture, the crosscheck's pass through the CUDA backend: the same forward, loss,
// backward and running-statistics code a train step runs (backend_net.cpp) with every per-layer
// buffer downloaded; and capture_loss, a loss alone through the loss kernels. Slow by design (a
// synchronous copy per buffer); never on the training path.
#include "cuda/capturer.hpp"

#include <fmt/format.h>

#include <cmath>

#include "common/errors.hpp"
#include "cuda/backend_activations.hpp"
#include "cuda/kernels/launch.hpp"

namespace wdlab::cuda {

namespace {

template <class T>
std::vector<T> download(const DeviceBuffer<T>& b, cudaStream_t s) {
  std::vector<T> v(b.size());
  b.copy_to_host(v, s);
  return v;
}

}  // namespace

Capture Capturer::capture(const CaptureRequest& r) {
  CudaBackend& b = be_;
  const int N = r.n;
  WDLAB_CHECK(N >= 1, "capture: empty batch");
  CudaBackend::Activations& a = b.activations(N);
  const cudaStream_t s = b.ctx_->stream();
  WDLAB_CHECK(r.images.size() == a.input.size(),
              fmt::format("capture: {} input values for a batch of {} ({} expected)", r.images.size(), N,
                          a.input.size()));
  WDLAB_CHECK(r.labels.size() == std::size_t(N), "capture: one label per example");
  for (const std::int32_t y : r.labels)
    WDLAB_CHECK(y >= 0 && y < b.spec_.classes, fmt::format("capture: label {} outside [0, {})", y, b.spec_.classes));
  const std::size_t L = b.spec_.layers.size();
  const bool given_cotangent = !r.cotangent.empty();
  if (given_cotangent)
    WDLAB_CHECK(r.cotangent.size() == a.dout[L - 1].size(),
                fmt::format("capture: cotangent of {} values, the last layer's output has {}", r.cotangent.size(),
                            a.dout[L - 1].size()));
  a.input.copy_from_host(r.images, s);
  a.labels.copy_from_host(r.labels, s);
  // skip = 0: with a given cotangent there is no loss to find non-finite; otherwise LossTotals
  // sets it, and the running-statistics update obeys it as in a step.
  b.scalars_.fill_zero(s);

  Capture c;
  c.n = N;
  c.out.resize(L);
  c.dout.resize(L);
  c.bn_mean.resize(L);
  c.bn_var.resize(L);
  c.bn_eval_out.resize(L);
  c.grads.resize(b.info_.size());
  c.running.resize(b.info_.size());
  for (std::size_t p = 0; p < b.info_.size(); ++p) c.params.push_back(download(b.params_[p], s));
  const bool train = r.pass == CapturePass::train;
  b.forward(a, train);
  if (given_cotangent) {
    if (train) a.dout[L - 1].copy_from_host(r.cotangent, s);
  } else {
    b.loss_and_gradient(a, train);
  }
  for (std::size_t i = 0; i < L; ++i) c.out[i] = download(a.out[i], s);
  if (!given_cotangent) c.loss = b.read_scalars().loss_sum / double(N);
  if (train) {
    a.dinput = DeviceBuffer<float>(a.input.size());
    a.kept = CotangentsKept::every_layer;  // also the cotangent of a BN whose ReLU is fused
    b.backward(a);
    a.kept = CotangentsKept::needed;
    if (a.dinput_written) c.dinput = download(a.dinput, s);
    a.dinput = DeviceBuffer<float>();  // steps after this capture skip the input gradient again
    for (std::size_t i = 0; i < L; ++i) {
      if (a.dout_written[i]) c.dout[i] = download(a.dout[i], s);
      if (b.spec_.layers[i].kind != LayerKind::batchnorm) continue;
      const std::vector<double> st = download(a.bn[i], s);  // mean[C], var[C], invstd[C]
      const std::size_t C = std::size_t(b.spec_.layers[i].out.C);
      c.bn_mean[i].assign(st.begin(), st.begin() + std::ptrdiff_t(C));
      c.bn_var[i].assign(st.begin() + std::ptrdiff_t(C), st.begin() + std::ptrdiff_t(2 * C));
    }
    for (std::size_t p = 0; p < b.info_.size(); ++p)
      if (b.info_[p].trainable()) c.grads[p] = download(b.grads_[p], s);
    b.running_stats_update(a);
    bool has_bn = false;
    for (std::size_t p = 0; p < b.info_.size(); ++p)
      if (!b.info_[p].trainable()) {
        c.running[p] = download(b.params_[p], s);
        has_bn = true;
      }
    if (has_bn) {
      b.forward(a, false);
      for (std::size_t i = 0; i < L; ++i)
        if (b.spec_.layers[i].kind == LayerKind::batchnorm) c.bn_eval_out[i] = download(a.out[i], s);
    }
  }
  c.algorithms = b.algorithm_choices();
  return c;
}

LossCapture capture_loss(CaptureLoss kind, std::span<const float> outputs, std::span<const std::int32_t> labels,
                         std::span<const float> targets, int classes, int n, int device) {
  const std::size_t size = std::size_t(classes) * std::size_t(n);
  WDLAB_CHECK(classes >= 1 && n >= 1 && outputs.size() == size, "capture_loss: outputs must be N×K");
  Context ctx(device);
  const cudaStream_t s = ctx.stream();
  DeviceBuffer<float> z(size), grad(size);
  z.copy_from_host(outputs, s);
  DeviceBuffer<double> loss{std::size_t(n)}, correct{std::size_t(n)};
  DeviceBuffer<kernels::StepScalars> total(1);
  LossCapture out;
  if (kind == CaptureLoss::softmax_cross_entropy) {
    WDLAB_CHECK(labels.size() == std::size_t(n), "capture_loss: one label per example");
    for (const std::int32_t y : labels) WDLAB_CHECK(y >= 0 && y < classes, "capture_loss: label outside [0, K)");
    DeviceBuffer<std::int32_t> y{std::size_t(n)};
    y.copy_from_host(labels, s);
    DeviceBuffer<float> probs(size);
    kernels::launch_device(s, n, kernels::SoftmaxCrossEntropy{z.data(), y.data(), probs.data(), grad.data(),
                                                              loss.data(), correct.data(), classes, n});
    kernels::launch_device(s, 1, kernels::LossTotals{loss.data(), correct.data(), total.data(), n});
    out.probs = download(probs, s);
  } else {
    WDLAB_CHECK(targets.size() == size, "capture_loss: targets must be N×K");
    DeviceBuffer<float> t(size);
    t.copy_from_host(targets, s);
    kernels::launch_device(s, n, kernels::SquaredError{z.data(), t.data(), grad.data(), loss.data(), classes, n});
    kernels::launch_device(s, 1, kernels::LossTotals{loss.data(), nullptr, total.data(), n});
  }
  out.grad = download(grad, s);
  out.loss = download(total, s)[0].loss_sum / double(n);
  return out;
}

}  // namespace wdlab::cuda

// Capturer::capture_kfac, the crosscheck's K-FAC entry point: the quantities the reference side
// derives from ref::kfac_statistics at the case's parameters (apps/crosscheck/side_reference.cpp,
// append_curvature), computed by the code a K-FAC step runs: the statistics pass of
// backend_kfac.cpp (same Philox draws for the seed and RNG step), CudaKfac's syrk estimates,
// its cuSOLVER damped inverses with the π-split, and its preconditioning GEMMs. Slow by design
// (a fresh CudaKfac and synchronous downloads); never on the training path.
#include <fmt/format.h>

#include "common/errors.hpp"
#include "cuda/backend_activations.hpp"
#include "cuda/capturer.hpp"
#include "cuda/check.hpp"
#include "cuda/kfac.hpp"

namespace wdlab::cuda {

std::vector<KfacBlockCapture> Capturer::capture_kfac(const CaptureRequest& r, const OptimConfig& kfac_optim,
                                                     std::uint64_t seed) {
  CudaBackend& be = be_;
  const int N = r.n;
  WDLAB_CHECK(N >= 1, "capture_kfac: empty batch");
  WDLAB_CHECK(r.pass == CapturePass::train, "capture_kfac: K-FAC statistics come from train passes");
  CudaBackend::Activations& a = be.activations(N);
  const cudaStream_t s = be.ctx_->stream();
  WDLAB_CHECK(r.images.size() == a.input.size() && r.labels.size() == std::size_t(N),
              "capture_kfac: the batch does not match its size");
  for (const std::int32_t y : r.labels)
    WDLAB_CHECK(y >= 0 && y < be.spec_.classes,
                fmt::format("capture_kfac: label {} outside [0, {})", y, be.spec_.classes));
  const std::size_t L = be.spec_.layers.size();
  const bool given_cotangent = !r.cotangent.empty();
  if (given_cotangent)
    WDLAB_CHECK(r.cotangent.size() == a.dout[L - 1].size(), "capture_kfac: the cotangent does not fit the last layer");
  CudaKfac kfac(*be.ctx_, be.spec_, kfac_optim, optim::decay_flags(be.spec_, kfac_optim.reg), seed);  // throws unless K-FAC
  a.input.copy_from_host(r.images, s);
  a.labels.copy_from_host(r.labels, s);
  be.scalars_.fill_zero(s);

  // The gradient the update preconditions: the pass capture() runs (mean cross-entropy, or the
  // given cotangent), kept aside because the statistics pass's backward overwrites grads_.
  be.forward(a, true);
  if (given_cotangent)
    a.dout[L - 1].copy_from_host(r.cotangent, s);
  else
    be.loss_and_gradient(a, true);
  be.backward(a);
  std::vector<DeviceBuffer<float>> grads(be.info_.size());
  for (std::size_t p = 0; p < be.info_.size(); ++p) {
    if (!be.info_[p].trainable()) continue;
    grads[p] = DeviceBuffer<float>(be.grads_[p].size());
    WDLAB_CUDA_CHECK(cudaMemcpyAsync(grads[p].data(), be.grads_[p].data(), be.grads_[p].size() * sizeof(float),
                                     cudaMemcpyDeviceToDevice, s));
  }
  if (given_cotangent) {
    // Layer cases: the factors of the given cotangent (the reference's kfc.A, kfc.S), from the
    // buffers of the pass just run.
    std::vector<CudaKfac::BlockInput> in;
    for (const KfacBlockLayout& b : kfac.blocks())
      in.push_back(CudaKfac::BlockInput{be.input_of(a, b.layer), a.dout[std::size_t(b.layer)].data()});
    kfac.estimate(in, N);
  } else {
    be.kfac_statistics(a, 0, kfac);  // RNG step 0, as the reference side's
  }
  std::vector<KfacDampingRaise> raises;
  KfacFailure fail;
  if (!kfac.precondition_estimates(grads, &raises, &fail))
    throw NumericError(fmt::format("capture_kfac: {} of {}: {}", fail.tensor, fail.layer, fail.detail));

  std::vector<KfacBlockCapture> out;
  for (int b = 0; b < int(kfac.blocks().size()); ++b) {
    const KfacBlockLayout& blk = kfac.blocks()[std::size_t(b)];
    KfacBlockCapture c;
    c.layer = blk.layer;
    c.w = blk.w;
    c.b = blk.b;
    c.out = blk.out;
    c.in = blk.in;
    c.locations = blk.locations;
    c.A = kfac.download(b, 'A');
    c.S = kfac.download(b, 'S');
    c.A_inv = kfac.download(b, 'a');
    c.S_inv = kfac.download(b, 's');
    c.update_w = kfac.download_update(blk.w);
    if (blk.b >= 0) c.update_b = kfac.download_update(blk.b);
    c.damping_a = kfac.damping(b).a;
    c.damping_s = kfac.damping(b).s;
    for (const KfacDampingRaise& x : raises)
      if (x.layer == blk.name) (x.factor == 'A' ? c.damping_a : c.damping_s) = x.used;
    out.push_back(std::move(c));
  }
  return out;
}

}  // namespace wdlab::cuda

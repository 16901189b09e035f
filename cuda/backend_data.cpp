// CudaBackend's resident data: each data set uploaded once, then per batch only its example ids.
// A step's input costs one asynchronous copy of N ids from pinned memory and two kernels
// (GatherImages, GatherLabels); the step's one read-back (read_scalars) stays the only wait.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "common/errors.hpp"
#include "common/train/batching.hpp"
#include "cuda/backend.hpp"
#include "cuda/backend_activations.hpp"
#include "cuda/kernels/gather.hpp"
#include "cuda/kernels/launch.hpp"

namespace wdlab::cuda {

using kernels::Index;
using kernels::launch_device;

void CudaBackend::set_resident_data(train::DataSplit split, const train::DataView& v) {
  train::check_view(split, v);
  const Shape& in = spec_.input;
  if (v.channels != in.C || v.height != in.H || v.width != in.W)
    throw UsageError("data", fmt::format("the {} set's images are {}×{}×{}, the network takes {}×{}×{}",
                                         train::to_string(split), v.channels, v.height, v.width, in.C, in.H, in.W));
  // Labels past the network's classes would index outside the logits on the device.
  if (v.num_classes > spec_.classes)
    for (std::size_t i = 0; i < v.labels.size(); ++i)
      if (v.labels[i] >= spec_.classes)
        throw UsageError("data", fmt::format("the {} set's example {} has label {}, the network has {} classes",
                                             train::to_string(split), i, v.labels[i], spec_.classes));
  ResidentSet& r = resident_[std::size_t(split)];
  const cudaStream_t s = ctx_->stream();
  r = ResidentSet{};  // free the old copy first: the device may not hold two CIFARs' worth
  DeviceBuffer<float> images(v.images.size());
  images.copy_from_host(v.images, s);  // waits: the view need not outlive this call
  DeviceBuffer<std::int32_t> labels(v.labels.size());
  labels.copy_from_host(v.labels, s);
  r = ResidentSet{std::move(images), std::move(labels), v.size()};
}

void CudaBackend::gather(Activations& a, const train::IdBatch& b) {
  const ResidentSet& r = resident_[std::size_t(b.split)];
  if (r.n == 0)
    throw InternalError(fmt::format("cuda: batch of the {} set, which was not handed over (set_resident_data)",
                                    train::to_string(b.split)));
  train::check_ids(b, r.n);
  WDLAB_CHECK(b.n() == a.N, "batch size does not match the activations");
  const Shape& in = spec_.input;
  const kernels::GatherMode mode =
      b.augment.mode == train::Augment::on ? kernels::GatherMode::augment : kernels::GatherMode::copy;
  if (mode == kernels::GatherMode::augment && (b.augment.pad < 0 || b.augment.pad > std::min(in.H, in.W)))
    throw UsageError("pad", fmt::format("{}, expected 0..{} (≤ image side)", b.augment.pad, std::min(in.H, in.W)));
  const cudaStream_t s = ctx_->stream();
  if (ids_.size() < std::size_t(a.N)) ids_ = DeviceBuffer<std::int64_t>(std::size_t(a.N));
  // The staging waits for its previous copy before rewriting the pinned ids: the factor pass and
  // evaluation call this back to back with no read-back in between (cuda/staging_buffer.hpp).
  ids_staging_.upload(b.ids, ids_.data(), s);
  launch_device(s, Index(a.input.size()),
                kernels::GatherImages{r.images.data(), a.input.data(), ids_.data(), nullptr, b.augment.seed,
                                      b.augment.step, in.C, in.H, in.W, b.augment.pad, mode});
  launch_device(s, Index(a.N), kernels::GatherLabels{r.labels.data(), a.labels.data(), ids_.data()});
}

train::StepStats CudaBackend::train_step_ids(const train::IdBatch& batch, double lr, std::int64_t iteration) {
  if (!(std::isfinite(lr) && lr >= 0))
    throw InternalError(fmt::format("cuda train_step_ids: learning rate {} is not finite and >= 0", lr));
  WDLAB_CHECK(iteration >= 0, "iteration must be >= 0");
  Activations& a = activations(batch.n());
  gather(a, batch);
  if (kfac_) return kfac_step(a, lr, iteration);
  return run_step(a, lr);
}

void CudaBackend::accumulate_factor_init_ids(const train::IdBatch& batch, std::int64_t index) {
  if (!kfac_) throw InternalError("accumulate_factor_init_ids: the optimizer is not K-FAC");
  Activations& a = activations(batch.n());
  gather(a, batch);
  kfac_init_batch(a, index);
}

train::EvalStats CudaBackend::evaluate_ids(const train::IdBatch& batch) {
  Activations& a = activations(batch.n(), ActivationUse::eval);
  gather(a, batch);
  return run_eval(a);
}

}  // namespace wdlab::cuda

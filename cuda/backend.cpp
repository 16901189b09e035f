// CudaBackend: construction, steps, evaluation, checkpoints. The layer switch is in
// backend_net.cpp, the optimizers in cuda/optimizer.hpp.
#include "cuda/backend.hpp"

#include <cublas_v2.h>
#include <fmt/format.h>

#include <cmath>

#include "common/errors.hpp"
#include "common/train/optim_layout.hpp"
#include "cuda/backend_activations.hpp"
#include "cuda/kernels/launch.hpp"
#include "cuda/kfac.hpp"
#include "cuda/reductions.hpp"

namespace wdlab::cuda {

using kernels::Index;

namespace {

DeviceBuffer<float> upload_vector(const std::vector<float>& v, cudaStream_t s) {
  DeviceBuffer<float> b(v.size());
  b.copy_from_host(v, s);
  return b;
}

DeviceBuffer<float> zeros(std::size_t n, cudaStream_t s) {
  DeviceBuffer<float> b(n);
  b.fill_zero(s);
  return b;
}

std::vector<float> download(const DeviceBuffer<float>& b, cudaStream_t s) {
  std::vector<float> v(b.size());
  b.copy_to_host(v, s);
  return v;
}

}  // namespace

CudaBackend::CudaBackend(NetworkSpec spec, const std::vector<std::vector<float>>& params,
                         optim::OptimConfig optim, std::vector<char> decays, std::uint64_t seed,
                         BackendOptions options)
    : spec_(std::move(spec)), info_(spec_.params()), optim_(std::move(optim)), decays_(std::move(decays)),
      seed_(seed), options_(options) {
  spec_.validate();
  optim_.validate();  // before any GPU work
  optim::check_decay_flags(spec_, decays_);
  if (params.size() != info_.size())
    throw InternalError(fmt::format("CudaBackend: {} parameter tensors for {} in the spec",
                                    params.size(), info_.size()));
  ctx_ = std::make_unique<Context>(options_.device);
  conv_.math = options_.math;
  conv_.policy = options_.policy;
  WDLAB_CUBLAS_CHECK(cublasSetMathMode(
      ctx_->cublas(), options_.math == MathMode::tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
  const cudaStream_t s = ctx_->stream();
  slots_ = layer_slots(spec_);
  for (std::size_t i = 0; i < info_.size(); ++i) {
    const ParamInfo& p = info_[i];
    if (std::int64_t(params[i].size()) != p.numel())
      throw InternalError(fmt::format("CudaBackend: {} has {} values, expected {}", p.name,
                                      params[i].size(), p.numel()));
    params_.push_back(upload_vector(params[i], s));
    const std::size_t n = p.trainable() ? params[i].size() : 0;
    grads_.push_back(zeros(n, s));
  }
  scalars_ = DeviceBuffer<kernels::StepScalars>(1);
  optimizer_ = make_cuda_optimizer(*ctx_, spec_, optim_, decays_, seed_);
  first_order_ = optimizer_->first_order();
  kfac_ = optimizer_->kfac();
  if ((first_order_ == nullptr) == (kfac_ == nullptr))
    throw InternalError("CudaBackend: an optimizer is either first-order or K-FAC");
  ctx_->synchronize();
}

CudaBackend::~CudaBackend() = default;

std::string CudaBackend::describe() const {
  return fmt::format("cuda (float32, {} math, {} algorithms) on {}, {}, {} trainable parameters",
                     to_string(options_.math), to_string(options_.policy), ctx_->info().name,
                     to_string(optim_.kind), spec_.num_trainable());
}

void CudaBackend::upload(Activations& a, const train::HostBatch& b) {
  WDLAB_CHECK(b.n == a.N, "batch size does not match the activations");
  WDLAB_CHECK(std::int64_t(b.images.size()) == std::int64_t(spec_.input.size()) * b.n,
              "batch size does not match the input shape");
  WDLAB_CHECK(std::int64_t(b.labels.size()) == b.n, "one label per example");
  for (const std::int32_t y : b.labels)
    WDLAB_CHECK(y >= 0 && y < spec_.classes, fmt::format("label {} outside [0, {})", y, spec_.classes));
  // Pageable host memory: the call returns once the data is staged, so the batch may be reused.
  WDLAB_CUDA_CHECK(cudaMemcpyAsync(a.input.data(), b.images.data(), a.input.bytes(),
                                   cudaMemcpyHostToDevice, ctx_->stream()));
  WDLAB_CUDA_CHECK(cudaMemcpyAsync(a.labels.data(), b.labels.data(), a.labels.bytes(),
                                   cudaMemcpyHostToDevice, ctx_->stream()));
}

kernels::StepScalars CudaBackend::read_scalars() const {
  kernels::StepScalars h;
  scalars_.copy_to_host(std::span<kernels::StepScalars>(&h, 1), ctx_->stream());  // the step's one sync
  return h;
}

train::StepStats CudaBackend::train_step(const train::HostBatch& batch, double lr,
                                         std::int64_t iteration) {
  if (!(std::isfinite(lr) && lr >= 0))
    throw InternalError(fmt::format("cuda train_step: learning rate {} is not finite and >= 0", lr));
  WDLAB_CHECK(iteration >= 0, "iteration must be >= 0");
  Activations& a = activations(batch.n);
  upload(a, batch);
  if (kfac_) return kfac_step(a, lr, iteration);
  return run_step(a, lr);
}

train::StepStats CudaBackend::run_step(Activations& a, double lr) {
  if (policy_ == train::NonfinitePolicy::skip) snapshot_state();
  forward(a, true);
  loss_and_gradient(a, true);
  backward(a);
  begin_weight_steps();  // group rotation only
  optimizer_step(lr);
  running_stats_update(a);
  parameter_stats();
  const kernels::StepScalars h = read_scalars();
  train::StepStats s;
  s.loss = h.loss_sum / double(a.N);
  s.correct = std::int64_t(h.correct);
  s.finite = std::isfinite(s.loss) && h.param_stats[2] == 0.0;
  if (h.skip) first_order_->step_skipped();  // the device flag turned the update off
  if (!std::isfinite(s.loss)) {
    s.nonfinite_tensor = "loss";  // the device flag kept every tensor as it was
  } else if (!s.finite) {
    name_nonfinite(s);
    if (policy_ == train::NonfinitePolicy::skip) restore_state();
  }
  end_weight_steps(s);  // group rotation only (finite steps)
  return s;
}

train::EvalStats CudaBackend::evaluate(const train::HostBatch& batch) {
  Activations& a = activations(batch.n, ActivationUse::eval);
  upload(a, batch);
  return run_eval(a);
}

train::EvalStats CudaBackend::run_eval(Activations& a) {
  forward(a, false);
  loss_and_gradient(a, false);
  const kernels::StepScalars h = read_scalars();
  return train::EvalStats{.loss_sum = h.loss_sum, .correct = std::int64_t(h.correct), .n = a.N};
}

void CudaBackend::optimizer_step(double lr) {
  if (!first_order_) throw InternalError("optimizer_step: a K-FAC step goes through kfac_step (backend_kfac.cpp)");
  first_order_->step(params_, grads_, lr, &scalars_.data()->skip);
}

void CudaBackend::parameter_stats() {
  // Σθ, Σθ², #non-finite over every tensor after the step (running statistics too: the
  // reference checks them as well), into the step's scalars.
  double* out = scalars_.data()->param_stats;
  // Either set's scratch holds the parameters' partials; a step has made the training set.
  Activations& a = acts_[std::size_t(ActivationUse::train)] ? *acts_[std::size_t(ActivationUse::train)]
                                                           : *acts_[std::size_t(ActivationUse::eval)];
  bool first = true;
  for (std::size_t i = 0; i < params_.size(); ++i) {
    flat_stats(ctx_->stream(), params_[i].data(), Index(params_[i].size()), out,
               first ? kernels::Accumulate::overwrite : kernels::Accumulate::add, a.partial.data());
    first = false;
  }
}

void CudaBackend::snapshot_state() {
  // Device to device, queued before the step on the same stream: no host round trip.
  // (K-FAC steps keep a host copy of their whole state instead: backend_kfac.cpp.)
  copy_device_tensors(params_before_, params_, ctx_->stream());
  first_order_->snapshot();
}

void CudaBackend::restore_state() {
  copy_device_tensors(params_, params_before_, ctx_->stream());
  first_order_->restore();
  ctx_->synchronize();
}

void CudaBackend::name_nonfinite(train::StepStats& s) const {
  // Only after a failed step, so the per-tensor read-backs cost nothing in normal training. The
  // reference's order: a non-finite gradient first (it never steps on one), else the first
  // tensor that the update made non-finite.
  const cudaStream_t st = ctx_->stream();
  auto bad = [&](const DeviceBuffer<float>& b) {
    if (b.empty()) return false;
    const Index n = Index(b.size());
    DeviceBuffer<double> partial(static_cast<std::size_t>(flat_partials_needed(n))), total(3);
    flat_stats(st, b.data(), n, total.data(), kernels::Accumulate::overwrite, partial.data());
    std::vector<double> h(3);
    total.copy_to_host(h, st);
    return h[2] != 0.0;
  };
  for (std::size_t i = 0; i < params_.size(); ++i)
    if (info_[i].trainable() && bad(grads_[i])) {
      s.nonfinite_tensor = "gradient";
      s.nonfinite_layer = info_[i].name;
      return;
    }
  s.nonfinite_tensor = "update";
  for (std::size_t i = 0; i < params_.size(); ++i)
    if (bad(params_[i])) {
      s.nonfinite_layer = info_[i].name;
      return;
    }
}

std::vector<std::pair<std::string, double>> CudaBackend::weight_norms() const {
  std::vector<std::pair<std::string, double>> out;
  for (std::size_t i = 0; i < params_.size(); ++i) {
    if (info_[i].role != ParamRole::weight) continue;
    const Index n = Index(params_[i].size());
    DeviceBuffer<double> partial(std::size_t(flat_partials_needed(n)));
    DeviceBuffer<double> total(3);
    flat_stats(ctx_->stream(), params_[i].data(), n, total.data(), kernels::Accumulate::overwrite,
               partial.data());
    std::vector<double> h(3);
    total.copy_to_host(h, ctx_->stream());
    out.emplace_back(info_[i].name, std::sqrt(h[1]));
  }
  return out;
}

std::vector<std::vector<float>> CudaBackend::parameters() const {
  std::vector<std::vector<float>> out;
  for (const auto& p : params_) out.push_back(download(p, ctx_->stream()));
  return out;
}

io::SafetensorsFile CudaBackend::state() const {
  io::SafetensorsFile f;
  const cudaStream_t s = ctx_->stream();
  for (std::size_t i = 0; i < info_.size(); ++i)
    f.tensors[info_[i].name] = io::Tensor::from_f32(info_[i].shape, download(params_[i], s));
  optimizer_->write_state(f);
  train::mark_optim_layout(f);
  f.metadata["backend"] = "cuda";
  f.metadata["precision"] = "float";  // same as the float reference: checkpoints interchange
  return f;
}

void CudaBackend::load_state(const io::SafetensorsFile& file) {
  io::SafetensorsFile f = file;
  train::upgrade_optim_layout(f, info_);  // a checkpoint of optim_layout 1 is converted
  if (f.metadata.count("precision") && f.metadata.at("precision") != "float")
    throw DataError(f.source, fmt::format("precision is {}, the cuda backend uses float",
                                          f.metadata.at("precision")));
  // Read everything on the host first; commit only when all of it is there and well-formed.
  std::vector<std::vector<float>> p(info_.size());
  std::size_t optim_taken = 0;
  for (std::size_t i = 0; i < info_.size(); ++i) {
    const io::Tensor& t = f.at(info_[i].name);
    if (t.shape != info_[i].shape)
      throw DataError(f.source, fmt::format("tensor \"{}\" has the wrong shape", info_[i].name));
    p[i] = f.f32(info_[i].name);
  }
  const auto staged = optimizer_->stage_state(f, &optim_taken);
  std::size_t optim_present = 0;
  for (const auto& [name, tensor] : f.tensors)
    if (name.rfind("optim.", 0) == 0) ++optim_present;
  if (optim_present != optim_taken)
    throw DataError(f.source, fmt::format("holds {} optimizer tensors, {} expects {} (another "
                                          "optimizer's checkpoint?)",
                                          optim_present, to_string(optim_.kind), optim_taken));
  const cudaStream_t st = ctx_->stream();
  for (std::size_t i = 0; i < info_.size(); ++i) params_[i].copy_from_host(p[i], st);
  optimizer_->commit_state(*staged);
}

}  // namespace wdlab::cuda

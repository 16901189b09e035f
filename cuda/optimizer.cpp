// CudaFirstOrder's shared machinery (state buffers, checkpoints, the skip policy's copy) and
// make_cuda_optimizer, the one place that maps a kind to its class.
#include "cuda/optimizer.hpp"

#include <fmt/format.h>

#include <cmath>

#include "common/errors.hpp"
#include "cuda/kfac.hpp"
#include "cuda/optim_adam.hpp"
#include "cuda/optim_lion.hpp"
#include "cuda/optim_sgd.hpp"
#include "cuda/state_layout.hpp"

namespace wdlab::cuda {

std::unique_ptr<CudaOptimizer> make_cuda_optimizer(Context& ctx, const NetworkSpec& spec, const OptimConfig& config,
                                                   const std::vector<char>& decays, std::uint64_t seed) {
  switch (config.kind) {  // no default: a kind missing here is a compile error (-Wswitch)
    case OptimizerKind::sgd: return std::make_unique<CudaSgd>(ctx, spec, config, decays);
    case OptimizerKind::adam: return std::make_unique<CudaAdam>(ctx, spec, config, decays);
    case OptimizerKind::kfac_f:
    case OptimizerKind::kfac_g: return std::make_unique<CudaKfac>(ctx, spec, config, decays, seed);
    case OptimizerKind::lion: return std::make_unique<CudaLion>(ctx, spec, config, decays);
  }
  throw InternalError(fmt::format("make_cuda_optimizer: kind {} out of range", int(config.kind)));
}

KfacStatistics kfac_statistics_of(OptimizerKind kind) {
  switch (kind) {  // no default, as above
    case OptimizerKind::kfac_f: return KfacStatistics::fisher;
    case OptimizerKind::kfac_g: return KfacStatistics::gauss_newton;
    case OptimizerKind::sgd:
    case OptimizerKind::adam:
    case OptimizerKind::lion: break;
  }
  throw InternalError("optimizer " + to_string(kind) + " is not K-FAC");
}

CudaFirstOrder::CudaFirstOrder(Context& ctx, const NetworkSpec& spec, const OptimConfig& config,
                               std::vector<char> decays, std::vector<std::string> state_prefixes,
                               std::string step_count)
    : ctx_(ctx), info_(spec.params()), settings_(config), decays_(std::move(decays)),
      prefixes_(std::move(state_prefixes)), step_count_(std::move(step_count)) {
  optim::check_decay_flags(spec, decays_);
  state_.resize(prefixes_.size());
  for (DeviceTensors& slot : state_)
    for (const ParamInfo& p : info_) {
      slot.emplace_back(p.trainable() ? std::size_t(p.numel()) : 0);
      slot.back().fill_zero(ctx_.stream());
    }
}

kernels::Decay CudaFirstOrder::decay(std::size_t i) const {
  if (!decays_[i]) return kernels::Decay::none;
  switch (settings_.reg.kind) {
    case Regularization::none: return kernels::Decay::none;
    case Regularization::l2: return kernels::Decay::l2;
    case Regularization::wd: return kernels::Decay::wd;
  }
  throw InternalError("CudaFirstOrder: regularization out of range");
}

void CudaFirstOrder::step(DeviceTensors& params, const DeviceTensors& grads, double lr, const std::uint32_t* skip) {
  if (params.size() != info_.size() || grads.size() != info_.size())
    throw InternalError("CudaFirstOrder::step: one buffer per parameter tensor expected");
  if (!step_count_.empty()) ++t_;
  for (std::size_t i = 0; i < info_.size(); ++i) {
    if (!info_[i].trainable()) continue;
    update(i, kernels::Index(params[i].size()), params[i].data(), grads[i].data(), decay(i), float(lr), skip);
  }
}

void CudaFirstOrder::step_skipped() {
  if (!step_count_.empty()) --t_;  // the step did not happen
}

void CudaFirstOrder::snapshot() {
  // Device to device, queued before the step on the same stream: no host round trip.
  before_.resize(state_.size());
  for (std::size_t j = 0; j < state_.size(); ++j) copy_device_tensors(before_[j], state_[j], ctx_.stream());
  t_before_ = t_;
}

void CudaFirstOrder::restore() {
  if (before_.size() != state_.size()) throw InternalError("CudaFirstOrder::restore without a snapshot");
  for (std::size_t j = 0; j < state_.size(); ++j) copy_device_tensors(state_[j], before_[j], ctx_.stream());
  t_ = t_before_;
}

void CudaFirstOrder::write_state(io::SafetensorsFile& f) const {
  for (std::size_t i = 0; i < info_.size(); ++i) {
    if (!info_[i].trainable()) continue;
    for (std::size_t j = 0; j < prefixes_.size(); ++j) {
      std::vector<float> h(state_[j][i].size());
      state_[j][i].copy_to_host(h, ctx_.stream());
      f.tensors[prefixes_[j] + info_[i].name] = optimizer_state_tensor(info_[i], h);
    }
  }
  if (!step_count_.empty()) f.tensors[step_count_] = scalar_state_tensor(float(t_));
}

struct CudaFirstOrder::StagedState : CudaOptimizer::Staged {
  std::vector<std::vector<std::vector<float>>> slots;  // per slot, per tensor
  std::int64_t t = 0;
};

std::shared_ptr<const CudaOptimizer::Staged> CudaFirstOrder::stage_state(const io::SafetensorsFile& f,
                                                                         std::size_t* taken) const {
  auto st = std::make_shared<StagedState>();
  st->slots.assign(prefixes_.size(), std::vector<std::vector<float>>(info_.size()));
  for (std::size_t i = 0; i < info_.size(); ++i) {
    if (!info_[i].trainable()) continue;
    for (std::size_t j = 0; j < prefixes_.size(); ++j) {
      const std::string name = prefixes_[j] + info_[i].name;
      st->slots[j][i] = optimizer_state_values(info_[i], f.at(name), name);
      ++*taken;
    }
  }
  st->t = t_;
  if (!step_count_.empty()) {
    const auto tv = f.f32(step_count_);
    ++*taken;
    if (tv.size() != 1 || !(tv[0] >= 0 && tv[0] == std::floor(tv[0]) && tv[0] < 16777216.0f))
      throw DataError(step_count_, "must be a step count");
    st->t = std::int64_t(tv[0]);
  }
  return st;
}

void CudaFirstOrder::commit_state(const Staged& staged) {
  const auto* st = dynamic_cast<const StagedState*>(&staged);
  if (!st) throw InternalError("CudaFirstOrder::commit_state: state staged by another optimizer");
  for (std::size_t i = 0; i < info_.size(); ++i) {
    if (!info_[i].trainable()) continue;
    for (std::size_t j = 0; j < prefixes_.size(); ++j) state_[j][i].copy_from_host(st->slots[j][i], ctx_.stream());
  }
  t_ = st->t;
}

}  // namespace wdlab::cuda

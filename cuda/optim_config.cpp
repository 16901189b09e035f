#include "cuda/optim_config.hpp"

#include <fmt/format.h>

#include <cmath>

#include "common/errors.hpp"

namespace wdlab::cuda {

std::string to_string(OptimizerKind k) {
  switch (k) {
    case OptimizerKind::sgd: return "sgd";
    case OptimizerKind::adam: return "adam";
    case OptimizerKind::kfac_f: return "kfac-f";
    case OptimizerKind::kfac_g: return "kfac-g";
    case OptimizerKind::lion: return "lion";
  }
  return "unknown";
}

void OptimSettings::validate(const NetworkSpec& spec) const {
  if (kind == OptimizerKind::kfac_f || kind == OptimizerKind::kfac_g) {
    // The apps fill these from a validated ref::KfacConfig; checked again so a hand-made
    // setting fails here, not inside a kernel.
    if (!(kfac.damping >= 0 && std::isfinite(kfac.damping)))
      throw UsageError("damping", fmt::format("must be finite and >= 0, got {}", kfac.damping));
    if (kfac.t_cov < 1) throw UsageError("t_cov", fmt::format("must be >= 1, got {}", kfac.t_cov));
    if (kfac.t_inv < 1) throw UsageError("t_inv", fmt::format("must be >= 1, got {}", kfac.t_inv));
    if (!(kfac.cov_ema_decay >= 0 && kfac.cov_ema_decay < 1))
      throw UsageError("cov_ema_decay", fmt::format("must be in [0, 1), got {}", kfac.cov_ema_decay));
    if (!(kfac.kl_clip >= 0 && std::isfinite(kfac.kl_clip)))
      throw UsageError("kl_clip", fmt::format("must be finite and >= 0, got {}", kfac.kl_clip));
    if (!(kfac.momentum >= 0 && kfac.momentum < 1))
      throw UsageError("momentum", fmt::format("must be in [0, 1), got {}", kfac.momentum));
    if (!(kfac.gn_probe_variance > 0 && std::isfinite(kfac.gn_probe_variance)))
      throw UsageError("gn_probe_variance", fmt::format("must be finite and > 0, got {}", kfac.gn_probe_variance));
    if (kfac.max_damping_raises < 0)
      throw UsageError("max_damping_raises", fmt::format("must be >= 0, got {}", kfac.max_damping_raises));
  }
  const auto params = spec.params();
  if (decays.size() != params.size())
    throw InternalError(fmt::format("OptimSettings: {} decay flags for {} tensors", decays.size(),
                                    params.size()));
  for (std::size_t i = 0; i < params.size(); ++i)
    if (decays[i] && !params[i].trainable())
      throw InternalError(fmt::format("OptimSettings: running statistic {} marked as decayed",
                                      params[i].name));
  if (reg != Regularization::none && !(weight_decay >= 0))
    throw UsageError("weight_decay", fmt::format("must be >= 0, got {}", weight_decay));
}

}  // namespace wdlab::cuda

#include "cuda/optim_config.hpp"

#include <fmt/format.h>

#include "common/errors.hpp"

namespace wdlab::cuda {

std::string to_string(OptimizerKind k) {
  switch (k) {
    case OptimizerKind::sgd: return "sgd";
    case OptimizerKind::adam: return "adam";
    case OptimizerKind::kfac_f: return "kfac-f";
    case OptimizerKind::kfac_g: return "kfac-g";
  }
  return "unknown";
}

void OptimSettings::validate(const NetworkSpec& spec) const {
  if (kind == OptimizerKind::kfac_f || kind == OptimizerKind::kfac_g)
    throw UsageError("optimizer",
                     fmt::format("{} is not implemented on the cuda backend yet (its kernels for "
                                 "patches and sampled cotangents exist, the factor and inverse "
                                 "steps do not); use --backend reference",
                                 to_string(kind)));
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

#pragma once
// The CUDA backend's optimizer settings: plain data, filled by the apps from the experiment's
// reference OptimConfig (cuda/ and reference/ never include each other, DESIGN.md), with the
// per-tensor regularization decided there by ref::decays() so both backends decay the same
// tensors. Formulas as reference/optim/{sgd,adam}.hpp.
#include <string>
#include <vector>

#include "common/network_spec.hpp"

namespace wdlab::cuda {

enum class OptimizerKind { sgd, adam, kfac_f, kfac_g };
enum class Regularization { none, l2, wd };
enum class MomentumKind { heavy_ball, nesterov };

struct OptimSettings {
  OptimizerKind kind = OptimizerKind::sgd;
  double momentum = 0.9;  // SGD μ
  MomentumKind momentum_kind = MomentumKind::heavy_ball;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;  // Adam
  Regularization reg = Regularization::none;
  double weight_decay = 0.0;  // β
  /// Per entry of spec.params(): whether that tensor is regularized (running statistics: no).
  std::vector<char> decays;
  /// Throws UsageError for K-FAC (not on this backend yet) and InternalError when `decays` does
  /// not have one entry per tensor of `spec` or marks a running statistic.
  void validate(const NetworkSpec& spec) const;
};

std::string to_string(OptimizerKind k);

}  // namespace wdlab::cuda

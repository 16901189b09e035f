#pragma once
// The CUDA backend's optimizer settings: plain data, filled by the apps from the experiment's
// reference OptimConfig (cuda/ and reference/ never include each other, DESIGN.md), with the
// per-tensor regularization decided there by ref::decays() so both backends decay the same
// tensors. Formulas as reference/optim/{sgd,adam,kfac,lion}.hpp.
#include <cstdint>
#include <string>
#include <vector>

#include "common/network_spec.hpp"

namespace wdlab::cuda {

enum class OptimizerKind { sgd, adam, kfac_f, kfac_g, lion };
enum class Regularization { none, l2, wd };
enum class MomentumKind { heavy_ball, nesterov };
/// The damped factor inverse (reference/optim/damped_inverse.hpp): cuSOLVER potrf+potri, or
/// syevd with the eigenvalues of F + dI clipped at >= d.
enum class InverseMethod { cholesky, eig };
/// identity: factors start at I; data_pass: one pass over the training set sets them.
enum class FactorInit { identity, data_pass };

/// K-FAC's settings, field for field ref::KfacConfig (defaults there), plus the seed of the
/// sampled cotangents (the reference backend's seed, so both draw the same targets and probes).
struct KfacSettings {
  double damping = 1e-3;        // λ
  int t_cov = 10;               // factor EMA after steps k with (k+1) mod t_cov = 0
  int t_inv = 100;              // inverses at steps k with k mod t_inv = 0 (or none yet)
  double cov_ema_decay = 0.95;  // ε in A ← εA + (1−ε)Â
  double kl_clip = 0.0;         // κ; 0 = off
  double momentum = 0.9;        // μ
  InverseMethod inverse = InverseMethod::cholesky;
  FactorInit factor_init = FactorInit::identity;
  double gn_probe_variance = 1.0;
  int max_damping_raises = 12;
  std::uint64_t seed = 0;
};

struct OptimSettings {
  OptimizerKind kind = OptimizerKind::sgd;
  double momentum = 0.9;  // SGD μ
  MomentumKind momentum_kind = MomentumKind::heavy_ball;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;  // Adam
  Regularization reg = Regularization::none;
  double weight_decay = 0.0;  // β
  /// Per entry of spec.params(): whether that tensor is regularized (running statistics: no).
  std::vector<char> decays;
  KfacSettings kfac;  // kfac_f / kfac_g only
  /// Lion (Chen et al. 2023): c = β₁m + (1−β₁)g steps, m ← β₂m + (1−β₂)g.
  struct LionSettings {
    double beta1 = 0.9, beta2 = 0.99;
  } lion;
  /// Throws UsageError for a bad K-FAC setting and InternalError when `decays` does not have
  /// one entry per tensor of `spec` or marks a running statistic.
  void validate(const NetworkSpec& spec) const;
};

std::string to_string(OptimizerKind k);

}  // namespace wdlab::cuda

#pragma once
// Optimizer update bodies, one tensor at a time, elementwise (reference/optim/sgd.hpp,
// adam.hpp, lion.hpp). Each body is listed in WDLAB_OPTIM_UPDATE_BODIES at the end, which
// instantiate_loss_optim.cu expands into its device launcher. The same float operations in the same order as the reference's float
// instantiation; `skip` (device flag, may be null) turns the step off after a non-finite loss,
// as the reference returns before stepping.
#include <cmath>

#include "cuda/kernels/hd.hpp"

namespace wdlab::cuda::kernels {

enum class Decay : std::uint32_t { none = 0, l2 = 1, wd = 2 };  // this tensor's regularization
enum class Momentum : std::uint32_t { heavy_ball = 0, nesterov = 1 };

/// g ← g + βθ (L2); v ← μv + g; step = v (heavy ball) or g + μv (Nesterov); step += βθ (WD);
/// θ ← θ − η·step.
struct SgdUpdate {
  float* theta;
  const float* grad;
  float* v;
  const std::uint32_t* skip;
  float lr, mu, beta;
  Decay decay;
  Momentum momentum;
  WDLAB_HD void operator()(Index i) const {
    if (skip && *skip) return;
    const float th = theta[i];
    float g = grad[i];
    if (decay == Decay::l2) g = g + beta * th;
    const float vi = mu * v[i] + g;
    v[i] = vi;
    float step = momentum == Momentum::heavy_ball ? vi : g + mu * vi;
    if (decay == Decay::wd) step = step + beta * th;
    theta[i] = th - lr * step;
  }
};

/// g ← g + βθ (L2); m ← β₁m + (1−β₁)g; v ← β₂v + (1−β₂)g²;
/// step = (m/c₁)/(√(v/c₂) + ε) with c₁ = 1 − β₁ᵗ, c₂ = 1 − β₂ᵗ (host, in double, then float);
/// step += βθ (WD); θ ← θ − η·step.
struct AdamUpdate {
  float* theta;
  const float* grad;
  float* m;
  float* v;
  const std::uint32_t* skip;
  float lr, beta1, beta2, eps, c1, c2, beta;
  Decay decay;
  WDLAB_HD void operator()(Index i) const {
    if (skip && *skip) return;
    const float th = theta[i];
    float g = grad[i];
    if (decay == Decay::l2) g = g + beta * th;
    const float mi = beta1 * m[i] + (1.0f - beta1) * g;
    const float vi = beta2 * v[i] + (1.0f - beta2) * (g * g);
    m[i] = mi;
    v[i] = vi;
    float step = (mi / c1) / (sqrtf(vi / c2) + eps);
    if (decay == Decay::wd) step = step + beta * th;
    theta[i] = th - lr * step;
  }
};

/// Lion (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms", Algorithm 2):
///   g ← g + βθ (L2);  c = β₁m + (1−β₁)g;  step = sign(c) (sign(0) = 0; a NaN c stays NaN, so a
///   non-finite gradient reaches θ and the step's non-finite check instead of vanishing);
///   step += βθ (WD, decoupled);  θ ← θ − η·step;  m ← β₂m + (1−β₂)g.
struct LionUpdate {
  float* theta;
  const float* grad;
  float* m;
  const std::uint32_t* skip;
  float lr, beta1, beta2, beta;
  Decay decay;
  WDLAB_HD void operator()(Index i) const {
    if (skip && *skip) return;
    const float th = theta[i];
    float g = grad[i];
    if (decay == Decay::l2) g = g + beta * th;
    const float mi = m[i];
    const float c = beta1 * mi + (1.0f - beta1) * g;
    float step = c > 0.0f ? 1.0f : c < 0.0f ? -1.0f : c == 0.0f ? 0.0f : c;
    if (decay == Decay::wd) step = step + beta * th;
    theta[i] = th - lr * step;
    m[i] = beta2 * mi + (1.0f - beta2) * g;
  }
};

}  // namespace wdlab::cuda::kernels

/// Every update body above: instantiate_loss_optim.cu instantiates launch_device for each, so a
/// new rule's body is added here and nowhere else in cuda/kernels/.
#define WDLAB_OPTIM_UPDATE_BODIES(X) \
  X(SgdUpdate)                       \
  X(AdamUpdate)                      \
  X(LionUpdate)

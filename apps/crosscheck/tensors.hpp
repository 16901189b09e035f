#pragma once
// What a crosscheck side returns: named host tensors in double, each tagged with the quantity it
// is (which picks its tolerance) and its shape. Layout contract for every side (reference, CUDA):
//   activations and cotangents: NCHW (shape [N, C, H, W]; dense features [N, C, 1, 1]),
//   parameters, gradients, updates: PyTorch order ([K, C, R, S] conv, [out, in] dense),
//   K-FAC factors and inverses: square, rows in the reference's order (conv A: (c·R + r)·S + s,
//   then the homogeneous coordinate when the layer has a bias),
//   scalars (loss, metrics): shape [1].
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "common/network_spec.hpp"

namespace wdlab::xcheck {

enum class Quantity {
  preactivation,   // output of a dense/conv layer (before BN / the nonlinearity)
  bn_output,       // output of a BN layer (train-mode batch statistics)
  activation,      // output of any other layer (relu, pooling, flatten, residual add, ...)
  bn_statistic,    // BN batch mean/variance or running statistics after the update
  loss,            // scalar loss (and per-example losses)
  activation_grad, // cotangent at a layer's output, or at the network input
  param_grad,      // gradient of a trainable tensor
  kfac_factor,     // K-FAC A or S of one block (same sampled targets / probe vectors)
  damped_inverse,  // (A + π√λ'I)⁻¹, (S + √λ'/π I)⁻¹
  preconditioned,  // S̃⁻¹ [dW db] Ã⁻¹ / T of one block
  params_after,    // parameters after N optimizer steps
  optimizer_state, // optimizer state after N steps (momentum, moments, K-FAC factors)
  metric,          // mechanism metrics (norms, effective learning rate, effective damping, ...)
};
inline constexpr std::array<Quantity, 13> kAllQuantities{
    Quantity::preactivation, Quantity::bn_output,      Quantity::activation,
    Quantity::bn_statistic,  Quantity::loss,           Quantity::activation_grad,
    Quantity::param_grad,    Quantity::kfac_factor,    Quantity::damped_inverse,
    Quantity::preconditioned, Quantity::params_after,  Quantity::optimizer_state,
    Quantity::metric};
static_assert(kAllQuantities.size() == std::size_t(Quantity::metric) + 1, "kAllQuantities must list every Quantity");
std::string to_string(Quantity q);

/// The quantity of a layer's output: pre-activation (dense, conv), BN output, or activation.
inline Quantity output_quantity(LayerKind k) {
  switch (layer_info(k).output) {
    case LayerOutput::preactivation: return Quantity::preactivation;
    case LayerOutput::normalized: return Quantity::bn_output;
    case LayerOutput::activation: return Quantity::activation;
  }
  return Quantity::activation;
}

struct Tensor {
  std::string name;                  // e.g. "pre L3 features.0", "grad features.0.weight"
  Quantity quantity = Quantity::activation;
  std::vector<std::int64_t> shape;   // row-major, last index fastest
  std::vector<double> data;
  std::string note;                  // e.g. the algorithm a backend chose; printed with the line
  /// Side a only, 0 = none: errors are relative to max(‖a‖, scale) instead of ‖a‖. For sums
  /// that cancel: the gradient of a bias followed by BN is 0 up to rounding, so its error is
  /// measured against the magnitude the sum worked with, scale = ‖(Σ_{n,t} |dy_{k,n,t}|)_k‖.
  double scale = 0;
  /// Either side, 0 = none: an absolute ‖·‖₂ error this side's storage alone accounts for, added
  /// to tol·max(‖a‖, scale). A float32 side's parameters are rounded to float32 after every step,
  /// |fl(θ) − θ| ≤ u|θ| per element (u = 2⁻²⁴), so a delta θ_N − θ_0 computed from them carries
  /// up to N·u·‖θ‖ whatever the step's own error: for a small step (VGG16's conv weights at
  /// ‖θ‖ ~ 0.1, a delta ~1e-4 of it) that alone is ~2e-4 relative to the delta.
  double rounding = 0;
};

using Tensors = std::vector<Tensor>;

/// "[2, 3, 4]"
std::string shape_string(const std::vector<std::int64_t>& shape);
/// The multi-index of flat index i in a row-major `shape`: "[1, 0, 2]".
std::string index_string(const std::vector<std::int64_t>& shape, std::size_t i);

}  // namespace wdlab::xcheck

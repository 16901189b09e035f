#pragma once
// Reference batch normalization (Eigen, templated on the scalar; double is the oracle).
// Layout: x is (C·HW)×N, CHW order within a column, column n = example n (= NCHW memory);
// channel c owns rows [c·HW, (c+1)·HW). Statistics are per channel over the m = N·HW entries.
// Dense features are HW = 1. Paper nets use no γ/β and TF's momentum 0.99, ε = 1e-3 (MATH.md
// §4, §9.6).
#include <string>
#include <type_traits>

#include "common/network_spec.hpp"
#include "reference/eigen_types.hpp"

namespace wdlab::ref {

struct BatchNormGeometry {
  int N = 1, C = 1, HW = 1;  // batch, channels, spatial positions per channel (H·W)
  int rows() const { return C * HW; }
  int count() const { return N * HW; }  // m: entries per channel statistic
  std::string describe() const;
  /// Throws UsageError naming the bad field (non-positive sizes).
  void validate() const;
};

enum class BnMode { train, eval };  // batch statistics / running statistics
// Affine (y = x̂ / y = γ x̂ + β) is wdlab::Affine from common/network_spec.hpp.

/// Which batch variance feeds the running variance (normalization itself always uses the biased
/// σ²_B, in every framework):
///   unbiased: m/(m−1)·σ²_B. PyTorch, always. TF 1.x tf.layers.batch_normalization on 4-D inputs
///             (the paper's VGG/ResNet convs): the fused kernel returns the Bessel-corrected batch
///             variance and, with the default _bessels_correction_test_only = True, the layer
///             feeds it to moving_variance unchanged.
///   biased:   σ²_B. TF 1.x on 2-D inputs (the paper's MLP): no fused kernel, nn.moments' biased
///             variance goes to moving_variance.
/// The default is unbiased: checkpoints are PyTorch-named and PyTorch-compatible, and it matches
/// the paper's conv nets; pass biased to mimic TF's dense BN exactly.
enum class RunningVariance { unbiased, biased };

/// TF defaults used by the paper's code (MATH.md §9.6). Our momentum is TF's decay:
/// PyTorch's `momentum` = 1 − this.
inline constexpr double kBnMomentum = 0.99;
inline constexpr double kBnEps = 1e-3;

/// Optional per-channel vectors (γ, β in; dγ, dβ out): nullptr means "none". Spelled through
/// type_identity so that T is deduced from x alone and a bare nullptr binds (likewise ε and
/// momentum, so a double constant such as kBnEps serves a float instantiation).
template <class T>
using BnVecIn = std::type_identity_t<const Vec<T>*>;
template <class T>
using BnVecOut = std::type_identity_t<Vec<T>*>;

/// What backward (and the running-statistics update) needs from a forward pass.
template <class T>
struct BatchNormContext {
  BatchNormGeometry geom;
  BnMode mode = BnMode::train;
  Affine affine = Affine::off;
  Mat<T> xhat;          // (C·HW)×N: x̂ = (x − μ)·invstd
  Vec<T> mean;          // C: μ (batch mean in train mode, running mean in eval mode)
  Vec<T> var;           // C: biased batch variance mean((x − μ)²) (running variance in eval)
  Vec<T> var_unbiased;  // C: m/(m−1)·var (train mode only; empty in eval)
  Vec<T> invstd;        // C: 1/√(var + ε)
};

/// Affine::on iff both γ and β are given; throws InternalError if only one is.
template <class T>
Affine affine_of(const Vec<T>* gamma, const Vec<T>* beta);

/// μ_c = mean(x_c), σ²_c = mean((x_c − μ_c)²) (biased), x̂ = (x − μ)/√(σ² + ε),
/// y = γ x̂ + β (affine) or y = x̂. Means over the N·HW entries of channel c. Needs N·HW ≥ 2
/// (PreconditionError otherwise: one entry has no variance).
template <class T>
BatchNormContext<T> batchnorm_fprop_train(const BatchNormGeometry& geom, const Mat<T>& x,
                                          std::type_identity_t<T> eps, BnVecIn<T> gamma,
                                          BnVecIn<T> beta, Mat<T>& y);

/// The same into `ctx`, reusing its buffers (a training step's workspace: no allocation when the
/// shapes are those of the last call). With relu_out, the ReLU after BN is fused into the same
/// walk: relu_out = max(y, 0) (NaN passes, as relu_fprop), equal to relu_fprop(y) bit for bit.
/// y, relu_out and x are distinct matrices.
template <class T>
void batchnorm_fprop_train(const BatchNormGeometry& geom, const Mat<T>& x, std::type_identity_t<T> eps,
                           BnVecIn<T> gamma, BnVecIn<T> beta, Mat<T>& y, BatchNormContext<T>& ctx,
                           Mat<T>* relu_out = nullptr);

/// running_mean ← momentum·running_mean + (1 − momentum)·μ_B,
/// running_var  ← momentum·running_var  + (1 − momentum)·σ²_B (σ²_B as `which` says).
/// TF convention (momentum 0.99 = kBnMomentum). Only a train-mode context has batch statistics.
template <class T>
void batchnorm_update_running(Vec<T>& running_mean, Vec<T>& running_var,
                              const BatchNormContext<T>& ctx, std::type_identity_t<T> momentum,
                              RunningVariance which = RunningVariance::unbiased);

/// y = γ (x − running_mean)/√(running_var + ε) + β (or without γ, β): affine in x.
/// Returns the context for batchnorm_bprop (mode eval); callers that only infer may drop it.
template <class T>
BatchNormContext<T> batchnorm_fprop_eval(const BatchNormGeometry& geom, const Mat<T>& x,
                                         const Vec<T>& running_mean, const Vec<T>& running_var,
                                         std::type_identity_t<T> eps, BnVecIn<T> gamma,
                                         BnVecIn<T> beta, Mat<T>& y);

/// train: dx = γ·invstd·(dy − mean(dy) − x̂ ⊙ mean(dy ⊙ x̂))   (means per channel over N·HW)
/// eval:  dx = γ·invstd·dy                                      (statistics are constants)
/// both:  dγ = Σ dy ⊙ x̂,  dβ = Σ dy                           (sums per channel over N·HW)
/// γ must be given iff the forward pass had γ; dγ/dβ may be null (not wanted), and need Affine::on.
/// With relu_out (the fused ReLU's output r = relu(y)), dy is the cotangent at r and BN's own
/// cotangent dy ⊙ 1[r > 0] is formed inside the same walks (never stored): the result equals
/// relu_bprop followed by batchnorm_bprop up to the order of float additions.
template <class T>
void batchnorm_bprop(const BatchNormGeometry& geom, const BatchNormContext<T>& ctx,
                     const Mat<T>& dy, BnVecIn<T> gamma, Mat<T>& dx, BnVecOut<T> dgamma,
                     BnVecOut<T> dbeta, const Mat<T>* relu_out = nullptr);

}  // namespace wdlab::ref

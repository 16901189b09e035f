#pragma once
// The paper's statements as functions returning a CheckRecord. Each comment is the statement;
// the two sides of each are computed by independent code paths that share only the network.
// Preconditions are verified, never assumed: a statement that does not apply to the network
// throws PreconditionError (run_suite turns it into a skipped row with the reason); a network on
// which a valid computation does not exist (no finite-difference step between the ReLU kinks, a
// dead network for a control) returns a skipped row itself. Everything is matrix-free
// (theory/matfree.hpp). The *_control functions are negative controls: the same computation
// where an assumption is broken, expected to fail.
#include <cstdint>
#include <string>
#include <utility>

#include "theory/problem.hpp"
#include "theory/record.hpp"

namespace wdlab::theory {

// --- Mechanism II: gradient structure and the Gauss-Newton norm (MATH.md §6, §8) ---------------

/// Lemma 1: f(x) = J_x x for ReLU or linear nets without biases. lhs: J_x by backprop, times x.
CheckRecord lemma1_jx(const Problem& pb);
/// Lemma 1: J_θ θ = (L+1) f(x). lhs: J_θ by forward mode, times θ.
CheckRecord lemma1_jtheta(const Problem& pb);
/// Lemma 1 per layer: J_{W_l} vec(W_l) = f(x) for every l (the worst layer is reported).
CheckRecord lemma1_per_layer(const Problem& pb);
/// Negative control: with biases, J_θ θ ≠ (L+1) f.
CheckRecord lemma1_with_bias_control(const Problem& pb);

/// Lemma 2: θᵀGθ = (L+1)² E‖f‖², θᵀGθ = E‖J_θθ‖² by one JVP (forward mode).
CheckRecord lemma2_gn(const Problem& pb);
/// Lemma 2 (App. C): Σ_l θ_lᵀ G_ll θ_l = (L+1) E‖f‖², ReLU too; J_{θ_l}θ_l by reverse mode.
CheckRecord lemma2_blockdiag(const Problem& pb);
/// Lemma 2: θᵀ G_KFAC θ = Σ_l tr(W_lᵀ S_l W_l A_l) = (L+1) E‖f‖² for deep linear nets.
CheckRecord lemma2_kfac(const Problem& pb);
/// Negative control: for ReLU nets the Kronecker factorization is not exact.
CheckRecord lemma2_kfac_relu_control(const Problem& pb);

/// Theorem 1: θᵀGθ = (L+1)² ‖J_x‖²_F for linear nets with E[x] = 0, Cov(x) = I.
CheckRecord theorem1_gn(const Problem& pb);
/// Theorem 1: θᵀ G_KFAC θ = (L+1) ‖J_x‖²_F under the same assumptions.
CheckRecord theorem1_kfac(const Problem& pb);
/// Negative control: correlated inputs (Cov(x) ≠ I) break Theorem 1.
CheckRecord theorem1_unwhitened_control(const Problem& pb);

/// App. E: ∇_θ ‖θ‖²_G = 2(L+1) G θ along three random directions v. lhs: directional central
/// differences of θ ↦ E‖J_θ(θ) θ‖² (step from the nearest kink, Richardson); rhs: vᵀGθ.
CheckRecord appE_gradient(const Problem& pb);

// --- Mechanisms I and III: BN layers (MATH.md §5, §7); `layer` must carry BN -----------------

/// Eq. 8: f(αθ_l) = f(θ_l) for α > 0.
CheckRecord eq8_invariance(const Problem& pb, int layer, double alpha);
/// Eq. 8 consequence: ∇_{θ_l}L(αθ_l) = ∇_{θ_l}L(θ_l)/α.
CheckRecord eq8_gradient_scaling(const Problem& pb, int layer, double alpha);
/// Eq. 8 consequence: θ_lᵀ ∇_{θ_l}L = 0 (rel_err is the cosine of the angle).
CheckRecord eq8_gradient_orthogonal(const Problem& pb, int layer);

/// Eq. 9: after θ_l ← θ_l − η∇L, θ̂_l moves by −η/‖θ_l‖² (I − θ̂θ̂ᵀ)∇_θ̂ L(θ̂) + O(η²).
/// lhs, rhs: error/η² at the smallest and largest η; rel_err their relative change.
CheckRecord eq9_effective_lr(const Problem& pb, int layer);
/// Negative control: the same with η/‖θ_l‖ (the wrong power); the error is O(η).
CheckRecord eq9_wrong_power_control(const Problem& pb, int layer);

enum class Curvature { fisher, gauss_newton, kfac_gauss_newton, kfac_fisher };
std::string to_string(Curvature c);

/// Eq. 13/15: C(cθ_l) = C(θ_l)/c², for the layer-l block of C, as quadratic forms vᵀC_ll v.
CheckRecord eq15_curvature_scaling(const Problem& pb, int layer, Curvature c, double scale);

/// Eq. 16's expensive part, the forward-mode columns J e_q of the checked group at θ and at θ̂
/// (the dense exact Fisher and GN group blocks are formed from them), computed by the first row
/// that needs them and reused by the other rows on the same network and layer (the Fisher and GN
/// rows and the control use the same columns). run_suite keeps one per BN network.
struct DampingColumns {
  // What they were computed for: another network, data seed, θ or layer recomputes them.
  std::string network;
  std::uint64_t seed = 0;
  Vec<double> theta;
  int layer = -1;
  Mat<double> at_theta, at_theta_hat;  // (K·N)×|group|, empty until computed
};

/// Eq. 14/16: after θ_l ← θ_l − η(C(θ_l)+λI)⁻¹∇L, θ̂_l moves by
/// −η (C(θ̂_l) + λ‖θ_l‖² I)⁻¹ ∇_θ̂ L(θ̂) + O(η²). Checked on the whole layer when it has at most
/// 64 weights, else on unit 1's incoming weights (a scale-invariant group of its own under BN).
/// `shared` (optional) carries the Jacobian columns between the rows of one network.
CheckRecord eq16_effective_damping(const Problem& pb, int layer, Curvature c, DampingColumns* shared = nullptr);
/// Negative control: the prediction with damping λ in place of λ‖θ_l‖².
CheckRecord eq16_plain_damping_control(const Problem& pb, int layer, Curvature c,
                                       DampingColumns* shared = nullptr);

// --- Curvature matrices (MATH.md §3) and the update rules (§4) ----------------------------------

/// Exact Fisher of softmax CE = E[J_θᵀ (diag p − ppᵀ) J_θ], as quadratic forms vᵀFv.
CheckRecord fisher_ggn(const Problem& pb);
/// Fisher of a Gaussian output model = G (H = I), as quadratic forms.
CheckRecord fisher_squared_loss(const Problem& pb);
/// Sampled-target Fisher → exact Fisher, error ∝ n^{-1/2} (fitted slope over n = 1e2..1e4).
CheckRecord fisher_monte_carlo(const Problem& pb);

/// Eq. 7: (1−ηβ)θ − ηC⁻¹∇L equals θ − ηC⁻¹∇[L + (β/2)θᵀCθ] for a fixed SPD C, multiplied by C
/// (no solve): ∇R = ∇L + βCθ along random directions, ∇R by directional central differences.
CheckRecord eq7_wd_c_norm(const Problem& pb);

// --- Beyond the paper: scale-invariant layers (docs/theory-extensions.md, MATH.md §16) --------

/// The synthetic problem of the ext.* checks: a ReLU net with BN (ε = 0) after every hidden
/// layer, d = 8, width 16, K = 4, N = 32.
Problem ext_problem(std::uint64_t seed, int depth);

/// The root near 1 of x² − (1+γ−ηλ)x + γ = 0, the per-step scale of the exp-LR equivalence.
double momentum_rate(double eta, double lambda, double gamma);

enum class ExpLrTrained { scale_invariant_only, with_output_layer };
/// Li & Arora: GD(+momentum γ) with WD λ, LR η on the BN layers (output layer frozen) equals GD
/// without WD at η_t = η x^(−2t−1), θ̃_t = θ_t/x^t, same function, for T = 25 steps; with the
/// output layer trained too (not scale invariant) it must fail (id ext.exp_lr_non_invariant).
CheckRecord ext_exp_lr_equivalence(const Problem& pb, double momentum, ExpLrTrained trained);

enum class EqOptimizer { sgd_coupled, sgd_decoupled, adam_l2 };
enum class AngularCase { own_constant, other_form_constant };
/// Wan et al.: SGD with momentum α and WD λ on BN layers: the per-step angular update converges
/// to √(2ηλ/(1+α)) (WD coupled) or ≈ √(2ηλ(1−α)/(1+α)) (decoupled; the exact stationary value is
/// used), the same for every layer. The control (id ext.angular_other_form) compares the run
/// with the other form's constant. (adam_l2 is only used by the measurement in the docs.)
CheckRecord ext_angular_equilibrium(const Problem& pb, EqOptimizer opt, AngularCase c = AngularCase::own_constant);

/// RMS per-step angle of layers 1 and 2 of pb under Adam(β₁ = 0.9, lr 1e-3) + L2 λ = 0.05
/// (2000 + 4000 steps): a measurement for the docs, not a check.
std::pair<double, double> adam_l2_angles(const Problem& pb);

enum class GradRatioCase { weight_decay, no_weight_decay };
/// van Laarhoven: plain SGD + WD on a BN layer: ‖g‖/‖w‖ → √((2λ−ηλ²)/η) ≈ √(2λ/η); without WD
/// (control, id ext.grad_ratio_no_wd) the ratio keeps falling.
CheckRecord ext_grad_weight_ratio(const Problem& pb, GradRatioCase c);

}  // namespace wdlab::theory

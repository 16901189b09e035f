#pragma once
// The mechanism metrics of a NetworkSpec network on a probe batch (columns = examples), the
// reference oracle for every backend (common/train/measure.hpp names them). With BN in
// evaluation mode (running statistics) example n's logits f_n depend on x_n alone and the
// expectations below are exact averages over the N probe examples (batch mode: CurvatureBnPass):
//   E‖J_x‖²_F       = (1/N) Σ_n Σ_k ‖∇_x f_{k,n}‖²                     (K backward passes)
//   θᵀCθ            = (1/N) Σ_n (J_n θ)ᵀ H_n (J_n θ)                    (same passes)
//   K-FAC block     = T_l·(A_l ⊗ S_l), A = E[ā āᵀ], S = E_n[G_n H_n G_nᵀ]  (MATH.md §9.1, §9.5)
// with H = I (Gauss-Newton, G = E[JᵀJ]) or H = diag(p) − ppᵀ (Fisher of softmax CE). The output
// side is taken exactly with K cotangents per example: column j of B_n, B_n B_nᵀ = H_n
// (GN: B = I; Fisher: B_n e_j = √p_j (e_j − p), MATH.md §9.4). θ is every dense/conv weight and
// bias (BN γ/β, off in the paper's nets, are not part of it).
#include <cstdint>
#include <string>
#include <vector>

#include "common/network_spec.hpp"
#include "common/train/measure.hpp"
#include "reference/net/network.hpp"

namespace wdlab::ref {

enum class OutputMetric { gauss_newton, fisher };

/// One dense/conv layer's curvature from an output pass.
template <class T>
struct LayerCurvature {
  FactorStats<T> factors;   // A (with a homogeneous row/column when the layer has a bias), S
  std::string weight;       // the weight tensor's name
  /// E_n tr(J_{W̄,n}ᵀ H_n J_{W̄,n}), the trace of the exact diagonal block of [W b]; dense layers
  /// only (NaN for conv): E_n ‖ā_n‖² Σ_j ‖g_{j,n}‖².
  double exact_trace = 0;
};

template <class T>
struct OutputPass {
  std::vector<LayerCurvature<T>> layers;  // every dense/conv layer, in spec order
  double theta_norm = 0;  // θᵀCθ = (1/N) Σ_n Σ_j (B_n e_j · J_n θ)², J_n θ = Σ_l ⟨g_l, out_l⟩
  double jac_norm = 0;    // (1/N) Σ_n ‖B_nᵀ J_x(x_n)‖²_F when asked (GN: E‖J_x‖²_F), else 0
};

/// BN during an output pass (common/train/measure.hpp): eval (running statistics, the
/// default), or batch: the probe batch's statistics, and example n's cotangent multiplied by the
/// Rademacher sign s_n = ±1 (Philox purpose curvature_sign, step, index n), so that the
/// batch-statistics coupling keeps only E_s[g gᵀ] = Σ_m B_nm H_m B_nmᵀ up to O(1/N) cross terms.
struct CurvatureBnPass {
  train::CurvatureBn mode = train::CurvatureBn::eval;
  std::uint64_t seed = 0, step = 0;
};

/// s_n of a batch-mode pass: uniform(seed, curvature_sign, step, n) < ½ → −1, else +1.
double curvature_sign(std::uint64_t seed, std::uint64_t step, std::uint64_t n);

/// K backward passes with the cotangents B_n e_j (s_n·B_n e_j in batch mode); the input
/// gradient only when `input` is InputGrad::compute. theta_norm and jac_norm are per-example
/// quantities and are only meaningful in eval mode.
template <class T>
OutputPass<T> output_pass(const NetworkSpec& spec, const ParamStore<T>& p, const Mat<T>& x,
                          OutputMetric metric, InputGrad input, const CurvatureBnPass& bn = {});

/// Σ_l T_l·vec(W̄_l)ᵀ(A_l ⊗ S_l)vec(W̄_l) = Σ_l T_l·tr(W̄_lᵀ S_l W̄_l A_l), W̄ = [W b] (MATH.md §6).
template <class T>
double kfac_norm(const NetworkSpec& spec, const ParamStore<T>& p,
                 const std::vector<LayerCurvature<T>>& layers);

/// tr(T·(A ⊗ S)) = T·tr(A)·tr(S).
template <class T>
double kfac_trace(const FactorStats<T>& f);

/// Fraction of the eigenvalues T·α_i·σ_j of T·(A ⊗ S) (α, σ those of the symmetric factors)
/// strictly above λ: #{(i, j) : T·α_i·σ_j > λ} / (dim A · dim S).
template <class T>
double damping_fraction(const Mat<T>& A, const Mat<T>& S, int locations, double lambda);

/// M estimates of E‖J_x‖²_F by random projections: estimate m = (1/N) Σ_n ‖J_x(x_n)ᵀ v_{m,n}‖²,
/// v_{m,n} ∈ R^K with E[v vᵀ] = I: Rademacher (±1) or standard normal, from the shared Philox
/// (purpose jacobian_probe, step = rng_step·2³² + m, index = n·K + k). One backward pass each.
template <class T>
std::vector<double> jacobian_norm_estimates(const NetworkSpec& spec, const ParamStore<T>& p,
                                            const Mat<T>& x, int probes,
                                            train::ProbeDistribution dist, std::uint64_t seed,
                                            std::uint64_t rng_step);

/// wn-conv: W ← c·W, b ← c·b, and the following BN's running_mean ← c·running_mean,
/// running_var ← c²·running_var, c = target/‖W‖ (MATH.md §5). PreconditionError if the layer is
/// not followed by BN (rescaling would change the function); UsageError for an unknown or
/// non-weight name, a target that is not finite and > 0, or a zero weight.
template <class T>
void rescale_weight(const NetworkSpec& spec, ParamStore<T>& p, const std::string& weight,
                    double target);

}  // namespace wdlab::ref

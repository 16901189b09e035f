#pragma once
// Exact curvature matrices of the reference MLP and their K-FAC approximation (MATH.md §3, §9).
// Expectations are averages over the batch's examples; with BN, per-example quantities are
// differentiated through the batch statistics (the batch is one coupled function of θ).
//   G    = E[J_θᵀ J_θ]                                   Gauss-Newton (identity output metric)
//   GGN  = E[J_θᵀ H J_θ],  H = diag(p) − ppᵀ             softmax cross-entropy
//   F    = E_x E_{y~p(y|x)}[∇log p ∇log pᵀ]               Fisher, targets sampled from the model
//   K-FAC block of layer l: Ā_l ⊗ S_l, Ā = E[ā āᵀ] (ā = [a;1] with biases), S = E[g gᵀ]
#include <cstdint>
#include <vector>

#include "reference/mlp/mlp.hpp"

namespace wdlab::ref {

/// G = (1/N) Σ_n J_nᵀ J_n.
template <class T> Mat<T> gauss_newton(const std::vector<Mat<T>>& J);

/// (1/N) Σ_n J_nᵀ (diag p_n − p_n p_nᵀ) J_n, p_n = softmax(f_n).
template <class T> Mat<T> generalized_gauss_newton_ce(const std::vector<Mat<T>>& J,
                                                      const Mat<T>& probs);

/// Exact Fisher of softmax CE: (1/N) Σ_n Σ_y p(y|x_n) g_{ny} g_{ny}ᵀ with g_{ny} = ∇_θ log p(y|x_n)
/// by backprop (the expectation over classes taken exactly).
template <class T> Mat<T> fisher_exact_ce(const MlpSpec& spec, const MlpParams<T>& p,
                                          const Mat<T>& X);

/// Fisher of a Gaussian output model N(f, I): E over y = f + ε exactly, by the 2K sigma points
/// ε = ±√K e_k (weights 1/2K), for which E[ε εᵀ] = I holds exactly.
template <class T> Mat<T> fisher_exact_gaussian(const MlpSpec& spec, const MlpParams<T>& p,
                                                const Mat<T>& X);

/// Monte-Carlo Fisher: samples i = 0..n−1 take example i mod N and ŷ ~ Cat(p(·|x)) from the
/// shared RNG (purpose fisher_target, the given step, index i).
template <class T> Mat<T> fisher_sampled_ce(const MlpSpec& spec, const MlpParams<T>& p,
                                            const Mat<T>& X, int n_samples, std::uint64_t seed,
                                            std::uint64_t step);

enum class KfacCurvature {
  fisher_exact,    // S from the exact class expectation
  fisher_sampled,  // S from one sampled target per example (the K-FAC-F estimator)
  gn_exact,        // S from the identity output metric, summed over all output directions
  gn_sampled,      // S from one Gaussian probe per example with covariance probe_variance·I
};

template <class T>
struct KfacFactors {
  Mat<T> A;  // (in[+1])²: E[ā āᵀ] over examples
  Mat<T> S;  // out²: E[g gᵀ], g the cotangent at the layer's pre-BN output
};

/// Per-layer K-FAC factors; S is built from cotangents of the *summed* per-example loss and
/// divided by N, as the official code does (MATH.md §1, batch averaging).
template <class T>
std::vector<KfacFactors<T>> kfac_factors(const MlpSpec& spec, const MlpParams<T>& p,
                                         const Mat<T>& X, KfacCurvature curvature,
                                         std::uint64_t seed = 0, std::uint64_t step = 0,
                                         double probe_variance = 1.0);

/// Σ_l vec(W̄_l)ᵀ (Ā_l ⊗ S_l) vec(W̄_l) = Σ_l tr(W̄_lᵀ S_l W̄_l Ā_l), W̄ = [W b].
template <class T>
T kfac_norm(const MlpSpec& spec, const MlpParams<T>& p, const std::vector<KfacFactors<T>>& f);

/// The K-FAC block Ā_l ⊗ S_l of one layer as a dense matrix in θ's layout for that layer.
template <class T>
Mat<T> kfac_block(const MlpSpec& spec, const KfacFactors<T>& f, int layer);

/// Rows/columns of a P×P matrix belonging to one layer (its θ segment).
template <class T>
Mat<T> layer_block(const MlpSpec& spec, const Mat<T>& C, int layer);

}  // namespace wdlab::ref

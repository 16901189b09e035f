#pragma once
// Reference losses and the output-side random vectors of K-FAC (Eigen, templated on the scalar;
// double is the oracle). Logits/outputs are K×N, column n = example n; losses are means over
// the batch (MATH.md §1), so their gradients carry the 1/N.
#include <cstdint>

#include "reference/eigen_types.hpp"

namespace wdlab::ref {

/// p_{kn} = exp(z_{kn} − max_j z_{jn}) / Σ_j exp(z_{jn} − max_j z_{jn}) (column-wise, stable).
template <class T>
Mat<T> softmax_fprop(const Mat<T>& logits);

template <class T>
struct SoftmaxCrossEntropy {
  T loss = T(0);    // (1/N) Σ_n [logsumexp(z_n) − z_{y_n, n}]
  int correct = 0;  // #{n : argmax_k z_{kn} = y_n}, ties → the smallest k
  Mat<T> probs;     // K×N softmax (what K-FAC-F samples its targets from)
  Mat<T> dlogits;   // K×N: (softmax(z) − onehot(y))/N
};

/// ℓ = (1/N) Σ_n −log softmax(z_n)_{y_n}, by log-sum-exp (finite for any finite logits);
/// dℓ/dz = (p − onehot(y))/N. Labels must lie in [0, K): a label outside is a broken invariant
/// (the data layer validates labels against the class count with DataError), so it throws
/// InternalError via WDLAB_CHECK.
template <class T>
SoftmaxCrossEntropy<T> softmax_cross_entropy(const Mat<T>& logits, const Eigen::VectorXi& labels);

template <class T>
struct SquaredError {
  T loss = T(0);  // ½ (1/N) Σ_n ‖f_n − t_n‖²
  Mat<T> dout;    // K×N: (f − t)/N
};

/// ℓ = ½ (1/N) Σ_n ‖f_n − t_n‖², dℓ/df = (f − t)/N.
template <class T>
SquaredError<T> squared_error(const Mat<T>& out, const Mat<T>& target);

/// K-FAC-F targets: ŷ_n ~ Cat(p_n) by inversion of u_n = rng::uniform(seed, fisher_target, step,
/// n): ŷ_n = min{y : u_n < Σ_{j≤y} p_{jn}} (cumulated in double), K−1 if rounding leaves
/// u_n ≥ Σ_j p_{jn}. The same convention as reference/mlp/curvature.cpp. probs is K×N.
template <class T>
Eigen::VectorXi sample_categorical_targets(const Mat<T>& probs, std::uint64_t seed,
                                           std::uint64_t step);

/// K-FAC-G probes: v_{kn} = √variance · rng::normal(seed, gn_probe, step, n·K + k), K×N, so
/// E[v vᵀ] = variance·I. The paper's code samples ŷ ~ N(z, 0.5·I) and backprops −√2 ε, i.e.
/// variance = 2 here (MATH.md §9.4); variance = 1 estimates G itself.
template <class T>
Mat<T> gaussian_probes(int K, int N, double variance, std::uint64_t seed, std::uint64_t step);

}  // namespace wdlab::ref

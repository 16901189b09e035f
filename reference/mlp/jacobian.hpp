#pragma once
// Exact Jacobians of the reference MLP, per example, by two independent routes: reverse mode
// (one backward pass per output f_{k,n}) and forward mode (one JVP per parameter or input
// coordinate). With BN the outputs of a batch are coupled; both routes differentiate through
// the batch statistics.
#include <vector>

#include "reference/mlp/mlp.hpp"

namespace wdlab::ref {

enum class JacobianMethod { backprop, forward_mode };

/// J_θ[n] (K×P): ∂f_{k,n}/∂θ_p, θ laid out as MlpParams::flatten.
template <class T>
std::vector<Mat<T>> jacobian_theta(const MlpSpec& spec, const MlpParams<T>& p, const Mat<T>& X,
                                   JacobianMethod method);

/// J_x[n] (K×d): ∂f_{k,n}/∂x_{i,n} (the example's own input).
template <class T>
std::vector<Mat<T>> jacobian_x(const MlpSpec& spec, const MlpParams<T>& p, const Mat<T>& X,
                               JacobianMethod method);

}  // namespace wdlab::ref

#pragma once
// Reference MLP (Eigen, templated on the scalar; double is the oracle): forward, backward and
// forward-mode (JVP) passes over a batch stored column-per-example (X: d×N). The theory suite's
// engine (reference/mlp/: this, jacobian, curvature); networks in general run on reference/net/.
//   s_l = W_l a_{l-1} + b_l        W_l: out_l×in_l, s_l: out_l×N
//   z_l = (s_l − μ_l)/σ_l          BN with batch statistics, no γ/β (hidden layers, if on)
//   a_l = φ(z_l),  f = s_{L+1}     φ = ReLU or identity
// θ is laid out layer by layer: vec(W_l) column-major, then b_l (MlpSpec::param_offset).
#include <cstdint>
#include <vector>

#include "common/mlp_spec.hpp"
#include "reference/eigen_types.hpp"
#include "reference/init.hpp"

namespace wdlab::ref {

template <class T>
struct MlpParams {
  std::vector<Mat<T>> W;  // W[l]: out_l × in_l
  std::vector<Vec<T>> b;  // b[l]: out_l (empty without biases)

  Vec<T> flatten() const;
  static MlpParams unflatten(const MlpSpec& spec, const Vec<T>& theta);
  /// θ with layer l scaled by c (the others unchanged).
  MlpParams scaled_layer(int l, T c) const;
};


/// Weights drawn from the shared Philox RNG (purpose init, step = layer, index = element);
/// biases drawn uniform in [−bias_scale, bias_scale] (0 gives zero biases, as in training).
template <class T>
MlpParams<T> init_params(const MlpSpec& spec, std::uint64_t seed, Init init = Init::glorot_uniform,
                         double bias_scale = 0.0);

/// What backward and the curvature code need from a forward pass (no hidden state elsewhere).
template <class T>
struct MlpForward {
  std::vector<Mat<T>> a;      // a[0] = X; a[l+1] = φ(z_l) for hidden l: inputs of each layer
  std::vector<Mat<T>> s;      // s[l] = W_l a[l] + b_l: pre-BN output of layer l
  std::vector<Mat<T>> z;      // z[l] = BN(s[l]) (= s[l] without BN)
  std::vector<Vec<T>> sigma;  // BN batch std per unit (empty for layers without BN)
  const Mat<T>& output() const { return s.back(); }  // f: K×N
};

template <class T>
MlpForward<T> forward(const MlpSpec& spec, const MlpParams<T>& p, const Mat<T>& X);

/// Gradients of Σ_{k,n} dF_{kn} f_{kn} (a vector–Jacobian product through the whole batch).
template <class T>
struct MlpGrads {
  std::vector<Mat<T>> dW;  // out_l × in_l
  std::vector<Vec<T>> db;
  std::vector<Mat<T>> ds;  // cotangent at each layer's pre-BN output s_l (K-FAC's g)
  Mat<T> dX;               // d × N
  Vec<T> flatten() const;
};

/// dW_l = ds_l a_{l-1}ᵀ, db_l = ds_l 1, with ds from the chain rule through φ and BN.
template <class T>
MlpGrads<T> backward(const MlpSpec& spec, const MlpParams<T>& p, const MlpForward<T>& fw,
                     const Mat<T>& dF);

/// Forward-mode: df = Σ_p (∂f/∂θ_p) dθ_p + (∂f/∂X) dX, for a tangent (dθ, dX). K×N.
template <class T>
Mat<T> jvp(const MlpSpec& spec, const MlpParams<T>& p, const MlpForward<T>& fw,
           const MlpParams<T>& dtheta, const Mat<T>& dX);

/// Parameters of the same shapes, all zero.
template <class T>
MlpParams<T> zeros_like(const MlpSpec& spec);

/// Smallest |z| over all hidden pre-activations (ReLU kinks at 0); +inf for linear nets.
template <class T>
T min_abs_preactivation(const MlpSpec& spec, const MlpForward<T>& fw);

}  // namespace wdlab::ref

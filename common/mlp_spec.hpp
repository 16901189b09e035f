#pragma once
// An MLP of depth L: L hidden layers and L+1 weight matrices (MATH.md §1). Plain data, shared
// by every backend and by the theory suite.
//   s_l = W_l a_{l-1} (+ b_l),  z_l = BN(s_l) or s_l,  a_l = φ(z_l) for l ≤ L,  f = s_{L+1}.
// Code indexes weight layers from 0: layer i is the paper's layer i+1.
#include <string>

namespace wdlab {

enum class Activation { linear, relu };
enum class Bias { off, on };
enum class Norm { none, batchnorm };  // BN before the activation of every hidden layer, no γ/β

std::string to_string(Activation a);
std::string to_string(Bias b);
std::string to_string(Norm n);

struct MlpSpec {
  int input_dim = 5;
  int depth = 2;       // L hidden layers
  int width = 6;
  int output_dim = 3;  // K
  Activation activation = Activation::relu;
  Bias bias = Bias::off;
  Norm norm = Norm::none;
  double bn_eps = 0.0;  // 0 makes BN exactly scale invariant (the paper's idealization)

  int num_layers() const { return depth + 1; }
  int in_dim(int layer) const { return layer == 0 ? input_dim : width; }
  int out_dim(int layer) const { return layer == depth ? output_dim : width; }
  bool has_bn(int layer) const { return norm == Norm::batchnorm && layer < depth; }
  /// Number of scalars in θ: Σ_l out_l·in_l (+ out_l with biases).
  int num_params() const;
  /// Offset of layer `layer`'s weights in θ (weights column-major, then the bias).
  int param_offset(int layer) const;
  int layer_param_count(int layer) const;
  /// e.g. "relu L=3 5-6-6-6-3 nobias"
  std::string describe() const;
  /// Throws UsageError naming the bad field.
  void validate() const;
};

}  // namespace wdlab

#pragma once
// The random networks and data sets the checks run on: weights and inputs from the shared
// Philox RNG (purpose theory), so every row of `wdlab theory` is reproducible from its seed.
#include <cstdint>
#include <string>

#include "reference/mlp/mlp.hpp"
#include "theory/record.hpp"

namespace wdlab::theory {

using ref::Mat;
using ref::Vec;

enum class InputKind {
  gaussian,    // x ~ N(0, I) per example
  whitened,    // sample mean exactly 0 and sample covariance (1/N) X Xᵀ exactly I (Theorem 1)
  correlated,  // x = M z with a random M: Cov(x) = M Mᵀ ≠ I (Theorem 1's negative control)
  kink_free,   // gaussian, keeping the examples whose ReLU pre-activations are farthest from 0
};

struct Problem {
  MlpSpec spec;
  ref::MlpParams<double> params;
  Mat<double> X;              // d×N
  Eigen::VectorXi labels;     // N random labels in [0, K), for losses
  std::uint64_t seed = 0;
};

/// Glorot-uniform weights (biases uniform in ±0.5 when on, so they matter), inputs of the kind.
Problem make_problem(const MlpSpec& spec, std::uint64_t seed, int batch, InputKind inputs);

/// Mean softmax cross-entropy of the problem's labels and its gradient cotangent (P − Y)/N.
double mean_cross_entropy(const Mat<double>& logits, const Eigen::VectorXi& labels);
Mat<double> cross_entropy_cotangent(const Mat<double>& logits, const Eigen::VectorXi& labels);

/// Throws PreconditionError unless every hidden pre-activation has |z| ≥ margin.
void require_away_from_kinks(const Problem& pb, double margin, const std::string& check);
/// Throws PreconditionError unless the spec has no biases / no BN / a linear activation.
void require_no_bias(const MlpSpec& s, const std::string& check);
void require_no_bn(const MlpSpec& s, const std::string& check);
void require_linear(const MlpSpec& s, const std::string& check);
/// Throws PreconditionError unless ‖mean x‖ and ‖(1/N)XXᵀ − I‖ are at rounding level.
void require_whitened(const Mat<double>& X, const std::string& check);

/// Relative error ‖a − b‖/‖b‖; 0 when both are exactly 0, 1 when only b is (never NaN).
double rel_error(const Mat<double>& a, const Mat<double>& b);

/// Central differences ∂f/∂θ_q ≈ (f(θ + h e_q) − f(θ − h e_q)) / 2h for every q.
template <class F>
Vec<double> central_gradient(const Vec<double>& theta, double h, F&& f) {
  Vec<double> g(theta.size());
  for (Eigen::Index q = 0; q < theta.size(); ++q) {
    Vec<double> tp = theta, tm = theta;
    tp(q) += h;
    tm(q) -= h;
    g(q) = (f(tp) - f(tm)) / (2 * h);
  }
  return g;
}

}  // namespace wdlab::theory

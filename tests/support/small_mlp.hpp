#pragma once
// Small MLP specs and views shared by the reference and theory tests.
#include <span>

#include "common/mlp_spec.hpp"
#include "reference/eigen_types.hpp"

namespace wdlab::test {

/// d = 4 inputs, width 5, K = 3 outputs: big enough for every identity, small for exact matrices.
inline MlpSpec small_mlp(int depth, Activation act, Bias bias = Bias::off, Norm norm = Norm::none) {
  MlpSpec s;
  s.input_dim = 4;
  s.depth = depth;
  s.width = 5;
  s.output_dim = 3;
  s.activation = act;
  s.bias = bias;
  s.norm = norm;
  return s;
}

inline std::span<const double> span_of(const ref::Mat<double>& m) {
  return {m.data(), std::size_t(m.size())};
}

}  // namespace wdlab::test

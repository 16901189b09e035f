#include "common/mlp_spec.hpp"

#include <fmt/format.h>

#include "common/errors.hpp"

namespace wdlab {

std::string to_string(Activation a) { return a == Activation::relu ? "relu" : "linear"; }
std::string to_string(Bias b) { return b == Bias::on ? "bias" : "nobias"; }
std::string to_string(Norm n) { return n == Norm::batchnorm ? "bn" : "nobn"; }

int MlpSpec::layer_param_count(int layer) const {
  return out_dim(layer) * in_dim(layer) + (bias == Bias::on ? out_dim(layer) : 0);
}

int MlpSpec::param_offset(int layer) const {
  int off = 0;
  for (int l = 0; l < layer; ++l) off += layer_param_count(l);
  return off;
}

int MlpSpec::num_params() const { return param_offset(num_layers()); }

std::string MlpSpec::describe() const {
  std::string dims = std::to_string(input_dim);
  for (int l = 0; l < num_layers(); ++l) dims += "-" + std::to_string(out_dim(l));
  return fmt::format("{} L={} {} {}{}", to_string(activation), depth, dims, to_string(bias),
                     norm == Norm::batchnorm ? " bn" : "");
}

void MlpSpec::validate() const {
  if (input_dim < 1) throw UsageError("input_dim", fmt::format("must be >= 1, got {}", input_dim));
  if (depth < 0) throw UsageError("depth", fmt::format("must be >= 0, got {}", depth));
  if (width < 1) throw UsageError("width", fmt::format("must be >= 1, got {}", width));
  if (output_dim < 1)
    throw UsageError("output_dim", fmt::format("must be >= 1, got {}", output_dim));
  if (!(bn_eps >= 0)) throw UsageError("bn_eps", fmt::format("must be >= 0, got {}", bn_eps));
}

}  // namespace wdlab

#include "common/bn_relu_fusion.hpp"

namespace wdlab {

bool relu_fused_into_bn(const NetworkSpec& spec, int relu) {
  if (relu <= 0 || relu >= int(spec.layers.size())) return false;
  const Layer& l = spec.layers[std::size_t(relu)];
  return l.kind == LayerKind::relu && l.inputs.size() == 1 && l.inputs[0] == relu - 1 &&
         spec.layers[std::size_t(relu - 1)].kind == LayerKind::batchnorm;
}

bool relu_backward_fused(const NetworkSpec& spec, int relu) {
  if (!relu_fused_into_bn(spec, relu)) return false;
  for (int j = 0; j < int(spec.layers.size()); ++j) {
    if (j == relu) continue;
    for (const int src : spec.layers[std::size_t(j)].inputs)
      if (src == relu - 1) return false;
  }
  return true;
}

}  // namespace wdlab

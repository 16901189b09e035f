#pragma once
// Where a backend computes a ReLU inside the batch normalization just before it: one rule for
// both (tested in test_core). The CUDA kernels are in cuda/kernels/batchnorm.hpp; the reference
// engine passes relu_out to ref::batchnorm_fprop_train / batchnorm_bprop (reference/net/network.cpp).
#include "common/network_spec.hpp"

namespace wdlab {

/// Forward: layer `relu` is a ReLU whose only input is the BN layer just before it. BN's pass
/// then also writes relu(y) (CUDA: kernels::BnNormalize/BnEvalForward::relu_out) and the ReLU
/// does no work of its own. False for any index outside the network.
bool relu_fused_into_bn(const NetworkSpec& spec, int relu);

/// Backward: relu_fused_into_bn, and no other layer reads BN's output, so BN's cotangent is the
/// ReLU's input cotangent alone (dŷ = dr ⊙ 1[y > 0], nothing added to it). BN's backward then
/// reads dr and y and applies the mask itself (CUDA: kernels::BnReluPartialSums,
/// BnBackward::relu_in, BnEvalBackward::relu_in) and the ReLU does no work of its own. Where
/// BN's output has another reader (a residual branch) the ReLU's cotangent is one term of a sum,
/// and the two passes stay.
bool relu_backward_fused(const NetworkSpec& spec, int relu);

}  // namespace wdlab

#pragma once
// Where CudaBackend computes a ReLU inside the batch normalization just before it (host logic,
// no CUDA; tested on the CPU in test_cuda_plan). The kernel bodies are in kernels/batchnorm.hpp.
#include "common/network_spec.hpp"

namespace wdlab::cuda {

/// Forward: layer `relu` is a ReLU whose only input is the BN layer just before it. BN's kernel
/// then also writes relu(y) (kernels::BnNormalize/BnEvalForward::relu_out) and the ReLU
/// launches nothing. False for any index outside the network.
bool relu_fused_into_bn(const NetworkSpec& spec, int relu);

/// Backward: relu_fused_into_bn, and no other layer reads BN's output, so BN's cotangent is the
/// ReLU's input cotangent alone (dŷ = dr ⊙ 1[y > 0], nothing added to it). BN's backward then
/// reads dr and y and applies the mask itself (kernels::BnReluPartialSums, BnBackward::relu_in,
/// BnEvalBackward::relu_in) and the ReLU launches nothing. Where BN's output has another reader
/// (a residual branch) the ReLU's cotangent is one term of a sum, and the two kernels stay.
bool relu_backward_fused(const NetworkSpec& spec, int relu);

}  // namespace wdlab::cuda

#pragma once
// Adam, bias-corrected, on the device (reference/optim/adam.hpp; the update body
// kernels::AdamUpdate; c₁ = 1 − β₁ᵗ, c₂ = 1 − β₂ᵗ in double on the host, then float).
// State: "optim.adam.m.<param>", "optim.adam.v.<param>", "optim.adam.t". Built by
// make_cuda_optimizer.
#include <cmath>

#include "cuda/kernels/launch.hpp"
#include "cuda/optimizer.hpp"

namespace wdlab::cuda {

class CudaAdam final : public CudaFirstOrder {
 public:
  CudaAdam(Context& ctx, const NetworkSpec& spec, const OptimSettings& s)
      : CudaFirstOrder(ctx, spec, s, {"optim.adam.m.", "optim.adam.v."}, "optim.adam.t") {}
  OptimizerKind kind() const override { return OptimizerKind::adam; }

 private:
  void update(std::size_t i, kernels::Index n, float* theta, const float* grad, kernels::Decay decay, float lr,
              const std::uint32_t* skip) override {
    const OptimSettings& s = settings();
    const double c1 = 1 - std::pow(s.beta1, double(t())), c2 = 1 - std::pow(s.beta2, double(t()));
    kernels::launch_device(stream(), n,
                           kernels::AdamUpdate{theta, grad, state(0, i), state(1, i), skip, lr, float(s.beta1),
                                               float(s.beta2), float(s.eps), float(c1), float(c2),
                                               float(s.weight_decay), decay});
  }
};

}  // namespace wdlab::cuda

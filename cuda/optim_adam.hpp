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
  CudaAdam(Context& ctx, const NetworkSpec& spec, const OptimConfig& c, std::vector<char> decays)
      : CudaFirstOrder(ctx, spec, c, std::move(decays), {"optim.adam.m.", "optim.adam.v."}, "optim.adam.t") {}
  OptimizerKind kind() const override { return OptimizerKind::adam; }

 private:
  void update(std::size_t i, kernels::Index n, float* theta, const float* grad, kernels::Decay decay, float lr,
              const std::uint32_t* skip) override {
    const OptimConfig& s = settings();
    const double c1 = 1 - std::pow(s.adam.beta1, double(t())), c2 = 1 - std::pow(s.adam.beta2, double(t()));
    kernels::launch_device(stream(), n,
                           kernels::AdamUpdate{theta, grad, state(0, i), state(1, i), skip, lr, float(s.adam.beta1),
                                               float(s.adam.beta2), float(s.adam.eps), float(c1), float(c2),
                                               float(s.reg.weight_decay), decay});
  }
};

}  // namespace wdlab::cuda

#pragma once
// Lion (Chen et al. 2023) on the device (reference/optim/lion.hpp; the update body
// kernels::LionUpdate): θ ← θ − η(sign(β₁m + (1−β₁)g) [+ βθ under WD]), m ← β₂m + (1−β₂)g.
// State: "optim.lion.exp_avg.<param>" (PyTorch's name for the one moment). Built by
// make_cuda_optimizer.
#include "cuda/kernels/launch.hpp"
#include "cuda/optimizer.hpp"

namespace wdlab::cuda {

class CudaLion final : public CudaFirstOrder {
 public:
  CudaLion(Context& ctx, const NetworkSpec& spec, const OptimConfig& c, std::vector<char> decays)
      : CudaFirstOrder(ctx, spec, c, std::move(decays), {"optim.lion.exp_avg."}) {}
  OptimizerKind kind() const override { return OptimizerKind::lion; }

 private:
  void update(std::size_t i, kernels::Index n, float* theta, const float* grad, kernels::Decay decay, float lr,
              const std::uint32_t* skip) override {
    const OptimConfig& s = settings();
    kernels::launch_device(stream(), n,
                           kernels::LionUpdate{theta, grad, state(0, i), skip, lr, float(s.lion.beta1),
                                               float(s.lion.beta2), float(s.reg.weight_decay), decay});
  }
};

}  // namespace wdlab::cuda

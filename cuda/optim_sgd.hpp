#pragma once
// SGD with heavy-ball or Nesterov momentum on the device (reference/optim/sgd.hpp; the update
// body kernels::SgdUpdate). State: "optim.momentum.<param>". Built by make_cuda_optimizer.
#include "cuda/kernels/launch.hpp"
#include "cuda/optimizer.hpp"

namespace wdlab::cuda {

class CudaSgd final : public CudaFirstOrder {
 public:
  CudaSgd(Context& ctx, const NetworkSpec& spec, const OptimConfig& c, std::vector<char> decays)
      : CudaFirstOrder(ctx, spec, c, std::move(decays), {"optim.momentum."}) {}
  OptimizerKind kind() const override { return OptimizerKind::sgd; }

 private:
  void update(std::size_t i, kernels::Index n, float* theta, const float* grad, kernels::Decay decay, float lr,
              const std::uint32_t* skip) override {
    const kernels::Momentum momentum = [&] {
      switch (settings().sgd.kind) {
        case MomentumKind::heavy_ball: return kernels::Momentum::heavy_ball;
        case MomentumKind::nesterov: return kernels::Momentum::nesterov;
      }
      throw InternalError("CudaSgd: momentum kind out of range");
    }();
    kernels::launch_device(stream(), n,
                           kernels::SgdUpdate{theta, grad, state(0, i), skip, lr, float(settings().sgd.momentum),
                                              float(settings().reg.weight_decay), decay, momentum});
  }
};

}  // namespace wdlab::cuda

#pragma once
// SGD with momentum (MATH.md §9.7), per regularized tensor θ with gradient g:
//   L2:        g ← g + βθ                         (before momentum, Eq. 6)
//   heavy ball: v ← μv + g;  θ ← θ − η·(v [+ βθ if wd])
//   Nesterov:   v ← μv + g;  θ ← θ − η·(g + μv [+ βθ if wd])
//   WD:         the decoupled term ηβθ uses θ before the step and the scheduled η (Eq. 7).
// The official code's SGD treats `wd` as `l2` (MATH.md §12 item 10); here they differ unless
// μ = 0, where both give θ − η(g + βθ) bit for bit. State: "optim.momentum.<param>".
#include "reference/optim/optimizer.hpp"

namespace wdlab::ref {

template <class T>
class Sgd final : public Optimizer<T> {
 public:
  Sgd(const optim::SgdConfig& cfg, const optim::RegConfig& reg, const NetworkSpec& spec, const ParamStore<T>& like);
  std::string name() const override { return "sgd"; }
  NamedTensors<T> state() const override;
  void load_state(const NamedTensors<T>& state) override;

 private:
  void do_step(ParamStore<T>& params, const ParamStore<T>& grads, T lr, std::int64_t k) override;
  optim::SgdConfig cfg_;
  std::vector<Mat<T>> v_;  // momentum per tensor (empty for running statistics)
};

}  // namespace wdlab::ref

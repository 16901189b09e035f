#pragma once
// Adam, bias-corrected (MATH.md §9.7), per tensor θ with gradient g, t counting steps from 1:
//   L2:  g ← g + βθ  (before the moments, Eq. 6)
//   m ← β₁m + (1−β₁)g;  v ← β₂v + (1−β₂)g²;  m̂ = m/(1−β₁ᵗ);  v̂ = v/(1−β₂ᵗ)
//   θ ← θ − η·(m̂/(√v̂ + ε) [+ βθ if wd])   (decoupled decay scaled by the scheduled η, the
//   official code; Loshchilov & Hutter's AdamW with η_t = η)
// State: "optim.adam.m.<param>", "optim.adam.v.<param>", "optim.adam.t".
#include "reference/optim/optimizer.hpp"

namespace wdlab::ref {

template <class T>
class Adam final : public Optimizer<T> {
 public:
  Adam(const optim::AdamConfig& cfg, const optim::RegConfig& reg, const NetworkSpec& spec, const ParamStore<T>& like);
  std::string name() const override { return "adam"; }
  NamedTensors<T> state() const override;
  void load_state(const NamedTensors<T>& state) override;
  std::int64_t steps_taken() const { return t_; }

 private:
  void do_step(ParamStore<T>& params, const ParamStore<T>& grads, T lr, std::int64_t k) override;
  optim::AdamConfig cfg_;
  std::vector<Mat<T>> m_, v_;
  std::int64_t t_ = 0;
};

}  // namespace wdlab::ref

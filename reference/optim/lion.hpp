#pragma once
// Lion (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms", Alg. 2), the reference
// (oracle) form, per tensor θ with gradient g and momentum m (header-only: the class is the file):
//   L2:  g ← g + βθ                        (before the interpolation, Eq. 6)
//   c ← β₁m + (1−β₁)g                      (the interpolated momentum)
//   θ ← θ − η·(sign(c) [+ βθ if wd])       (sign(0) = 0; the decoupled decay is Lion's λ = β,
//                                           scaled by the scheduled η as Adam's here, Eq. 7)
//   m ← β₂m + (1−β₂)g                      (the momentum tracks g with the slower β₂)
// State: "optim.lion.exp_avg.<param>" (m, lion-pytorch's state["exp_avg"]), the parameter's shape.
// Effective learning rate (elr_opt, common/optim/optim_config.cpp): every coordinate moves by
// exactly η, so for a scale-invariant W the angular step is ~η/‖W‖, Adam's form; the
// rotational-equilibrium analysis of Kosson et al. (2024) applies to it as to AdamW.
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "reference/optim/optimizer.hpp"

namespace wdlab::ref {

template <class T>
class Lion final : public Optimizer<T> {
 public:
  static constexpr const char* kMomentum = "optim.lion.exp_avg.";  // + parameter name

  Lion(const optim::LionConfig& cfg, const optim::RegConfig& reg, const NetworkSpec& spec,
       const ParamStore<T>& like)
      : Optimizer<T>(spec, like, reg), cfg_(cfg) {
    cfg_.validate();
    m_ = this->zero_buffers();
  }
  std::string name() const override { return "lion"; }

  NamedTensors<T> state() const override {
    NamedTensors<T> s;
    for (int i = 0; i < int(m_.size()); ++i)
      if (this->trainable(i)) s.emplace_back(kMomentum + this->info_[i].name, m_[i]);
    return s;
  }

  void load_state(const NamedTensors<T>& state) override {
    StateReader<T> r(state, name());
    std::vector<Mat<T>> m(m_.size());
    for (int i = 0; i < int(m_.size()); ++i)
      if (this->trainable(i)) m[i] = r.take(kMomentum + this->info_[i].name, m_[i].rows(), m_[i].cols());
    r.finish();
    m_ = std::move(m);
  }

 private:
  /// sign(x) ∈ {−1, 0, 1}; NaN stays NaN, so that a non-finite gradient still shows in θ.
  static T sign(T x) { return std::isnan(x) ? x : T((x > T(0)) - (x < T(0))); }

  // Elementwise in pieces on the engine's threads, each entry in the order of the formulas above
  // (the bits of the whole-tensor expressions this replaced).
  void do_step(ParamStore<T>& params, const ParamStore<T>& grads, T lr, std::int64_t) override {
    const T b1 = T(cfg_.beta1), b2 = T(cfg_.beta2), beta = this->beta();
    this->for_each_piece([&](int i, Eigen::Index b, Eigen::Index e) {
      with_decay_flags(this->l2(i), this->wd(i), [&](auto L2, auto WD) {
        T* theta = params.values[i].data();
        const T* g = grads.values[i].data();
        T* m = m_[i].data();
        for (Eigen::Index j = b; j < e; ++j) {
          T gj = g[j];
          if constexpr (decltype(L2)::value) gj += beta * theta[j];
          const T c = b1 * m[j] + (T(1) - b1) * gj;
          T step = sign(c);
          if constexpr (decltype(WD)::value) step += beta * theta[j];
          theta[j] -= lr * step;
          m[j] = b2 * m[j] + (T(1) - b2) * gj;
        }
      });
    });
  }

  optim::LionConfig cfg_;
  std::vector<Mat<T>> m_;
};

}  // namespace wdlab::ref

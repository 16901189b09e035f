#include "reference/optim/sgd.hpp"

namespace wdlab::ref {

namespace {

template <class T>
struct SgdScalars {
  T mu, beta, lr;
};

/// One tensor in one pass, no temporaries: a plain loop over contiguous memory that GCC
/// vectorizes (L2, WD and Nesterov are template arguments: a branch inside the loop keeps GCC
/// from vectorizing it, measured with -fopt-info-vec); per element the same operations in the
/// same order as the formulas
///   g = ∇ (+ β θ, L2);  v ← μ v + g;  s = v (heavy ball) or g + μ v (Nesterov) (+ β θ, WD);
///   θ ← θ − lr s
template <class T, bool L2, bool WD, bool Nesterov>
void sgd_loop(Eigen::Index n, T* theta, const T* grad, T* v, const SgdScalars<T>& a) {
  for (Eigen::Index j = 0; j < n; ++j) {
    const T th = theta[j];
    const T g = L2 ? grad[j] + a.beta * th : grad[j];
    const T vj = a.mu * v[j] + g;
    v[j] = vj;
    T step = Nesterov ? g + a.mu * vj : vj;
    if (WD) step += a.beta * th;
    theta[j] = th - a.lr * step;
  }
}

}  // namespace

template <class T>
Sgd<T>::Sgd(const optim::SgdConfig& cfg, const optim::RegConfig& reg, const NetworkSpec& spec,
            const ParamStore<T>& like)
    : Optimizer<T>(spec, like, reg), cfg_(cfg) {
  cfg_.validate();
  v_ = this->zero_buffers();
}

template <class T>
void Sgd<T>::do_step(ParamStore<T>& params, const ParamStore<T>& grads, T lr, std::int64_t) {
  const SgdScalars<T> a{T(cfg_.momentum), this->beta(), lr};
  const bool nesterov = cfg_.kind != optim::MomentumKind::heavy_ball;
  this->for_each_piece([&](int i, Eigen::Index b, Eigen::Index e) {
    with_decay_flags(this->l2(i), this->wd(i), [&](auto L2, auto WD) {
      constexpr bool l2 = decltype(L2)::value, wd = decltype(WD)::value;
      T* theta = params.values[i].data() + b;
      const T* g = grads.values[i].data() + b;
      T* v = v_[i].data() + b;
      if (nesterov) sgd_loop<T, l2, wd, true>(e - b, theta, g, v, a);
      else sgd_loop<T, l2, wd, false>(e - b, theta, g, v, a);
    });
  });
}

template <class T>
NamedTensors<T> Sgd<T>::state() const {
  NamedTensors<T> s;
  for (int i = 0; i < int(v_.size()); ++i)
    if (this->trainable(i)) s.emplace_back("optim.momentum." + this->info_[i].name, v_[i]);
  return s;
}

template <class T>
void Sgd<T>::load_state(const NamedTensors<T>& state) {
  StateReader<T> r(state, name());
  std::vector<Mat<T>> v(v_.size());
  for (int i = 0; i < int(v_.size()); ++i)
    if (this->trainable(i))
      v[i] = r.take("optim.momentum." + this->info_[i].name, v_[i].rows(), v_[i].cols());
  r.finish();
  v_ = std::move(v);
}

template class Sgd<double>;
template class Sgd<float>;

}  // namespace wdlab::ref

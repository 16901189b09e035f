#include "reference/optim/sgd.hpp"

namespace wdlab::ref {

template <class T>
Sgd<T>::Sgd(const optim::SgdConfig& cfg, const optim::RegConfig& reg, const NetworkSpec& spec,
            const ParamStore<T>& like)
    : Optimizer<T>(spec, like, reg), cfg_(cfg) {
  cfg_.validate();
  v_ = this->zero_buffers();
}

template <class T>
void Sgd<T>::do_step(ParamStore<T>& params, const ParamStore<T>& grads, T lr, std::int64_t) {
  const T mu = T(cfg_.momentum), beta = this->beta();
  const bool nesterov = cfg_.kind != optim::MomentumKind::heavy_ball;
  for (int i = 0; i < int(params.values.size()); ++i) {
    if (!this->trainable(i)) continue;
    // One pass per tensor, no temporaries: a plain loop over contiguous memory that GCC
    // vectorizes; per element the same operations in the same order as the formulas
    //   g = ∇ (+ β θ, L2);  v ← μ v + g;  s = v (heavy ball) or g + μ v (Nesterov) (+ β θ, WD);
    //   θ ← θ − lr s
    T* theta = params.values[i].data();
    const T* grad = grads.values[i].data();
    T* v = v_[i].data();
    const bool l2 = this->l2(i), wd = this->wd(i);
    for (Eigen::Index j = 0, n = params.values[i].size(); j < n; ++j) {
      const T th = theta[j];
      const T g = l2 ? grad[j] + beta * th : grad[j];
      const T vj = mu * v[j] + g;
      v[j] = vj;
      T step = nesterov ? g + mu * vj : vj;
      if (wd) step += beta * th;
      theta[j] = th - lr * step;
    }
  }
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

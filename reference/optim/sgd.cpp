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
  for (int i = 0; i < int(params.values.size()); ++i) {
    if (!this->trainable(i)) continue;
    Mat<T>& theta = params.values[i];
    Mat<T> g = grads.values[i];
    if (this->l2(i)) g += beta * theta;
    v_[i] = mu * v_[i] + g;
    Mat<T> step = cfg_.kind == optim::MomentumKind::heavy_ball ? Mat<T>(v_[i]) : Mat<T>(g + mu * v_[i]);
    if (this->wd(i)) step += beta * theta;
    theta -= lr * step;
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

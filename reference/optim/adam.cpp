#include "reference/optim/adam.hpp"

#include <cmath>

#include <fmt/format.h>

#include "common/errors.hpp"

namespace wdlab::ref {

template <class T>
Adam<T>::Adam(const optim::AdamConfig& cfg, const optim::RegConfig& reg, const NetworkSpec& spec,
              const ParamStore<T>& like)
    : Optimizer<T>(spec, like, reg), cfg_(cfg) {
  cfg_.validate();
  m_ = this->zero_buffers();
  v_ = this->zero_buffers();
}

template <class T>
void Adam<T>::do_step(ParamStore<T>& params, const ParamStore<T>& grads, T lr, std::int64_t) {
  ++t_;
  const T b1 = T(cfg_.beta1), b2 = T(cfg_.beta2), eps = T(cfg_.eps), beta = this->beta();
  const T c1 = T(1 - std::pow(cfg_.beta1, double(t_)));  // bias corrections, in double
  const T c2 = T(1 - std::pow(cfg_.beta2, double(t_)));
  for (int i = 0; i < int(params.values.size()); ++i) {
    if (!this->trainable(i)) continue;
    Mat<T>& theta = params.values[i];
    Mat<T> g = grads.values[i];
    if (this->l2(i)) g += beta * theta;
    m_[i] = b1 * m_[i] + (T(1) - b1) * g;
    v_[i] = b2 * v_[i] + (T(1) - b2) * g.cwiseProduct(g);
    Mat<T> step = ((m_[i].array() / c1) / ((v_[i].array() / c2).sqrt() + eps)).matrix();
    if (this->wd(i)) step += beta * theta;
    theta -= lr * step;
  }
}

template <class T>
NamedTensors<T> Adam<T>::state() const {
  NamedTensors<T> s;
  for (int i = 0; i < int(m_.size()); ++i)
    if (this->trainable(i)) {
      s.emplace_back("optim.adam.m." + this->info_[i].name, m_[i]);
      s.emplace_back("optim.adam.v." + this->info_[i].name, v_[i]);
    }
  s.emplace_back("optim.adam.t", scalar_state(T(t_)));
  return s;
}

template <class T>
void Adam<T>::load_state(const NamedTensors<T>& state) {
  StateReader<T> r(state, name());
  std::vector<Mat<T>> m(m_.size()), v(v_.size());
  for (int i = 0; i < int(m_.size()); ++i)
    if (this->trainable(i)) {
      m[i] = r.take("optim.adam.m." + this->info_[i].name, m_[i].rows(), m_[i].cols());
      v[i] = r.take("optim.adam.v." + this->info_[i].name, v_[i].rows(), v_[i].cols());
    }
  const T t = r.scalar("optim.adam.t");
  r.finish();
  if (!(t >= 0 && t == std::floor(t) && double(t) < 16777216.0))  // exact in float
    throw DataError("optim.adam.t", fmt::format("must be a step count, got {}", double(t)));
  m_ = std::move(m);
  v_ = std::move(v);
  t_ = std::int64_t(t);
}

template class Adam<double>;
template class Adam<float>;

}  // namespace wdlab::ref

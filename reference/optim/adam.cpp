#include "reference/optim/adam.hpp"

#include <cmath>

#include <fmt/format.h>

#include "common/errors.hpp"

namespace wdlab::ref {

namespace {

template <class T>
struct AdamScalars {
  T b1, b2, one_b1, one_b2, c1, c2, eps, beta, lr;
};

/// One tensor's update in one pass without temporaries: a plain loop that GCC vectorizes (this
/// file is built with -fno-math-errno, so std::sqrt is the vector square root; v̂ ≥ 0 never set
/// errno), with L2 and WD as template arguments (a branch inside the loop keeps GCC from
/// vectorizing it). Per element the same operations in the same order as the formulas in
/// adam.hpp. Tested bit for bit against the Eigen expressions it replaced: identical in double;
/// in float those took Eigen's fast packet sqrt (rsqrtps + a Newton step: not correctly rounded,
/// CPU-dependent), this loop the IEEE square root on every element.
template <class T, bool L2, bool WD>
void adam_loop(Eigen::Index n, T* theta, const T* grad, T* m, T* v, const AdamScalars<T>& a) {
  for (Eigen::Index j = 0; j < n; ++j) {
    const T th = theta[j];
    const T g = L2 ? grad[j] + a.beta * th : grad[j];
    const T mj = a.b1 * m[j] + a.one_b1 * g;
    const T vj = a.b2 * v[j] + a.one_b2 * (g * g);
    m[j] = mj;
    v[j] = vj;
    T step = (mj / a.c1) / (std::sqrt(vj / a.c2) + a.eps);
    if (WD) step += a.beta * th;
    theta[j] = th - a.lr * step;
  }
}

}  // namespace

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
  const T one_b1 = T(1) - b1, one_b2 = T(1) - b2;
  const AdamScalars<T> a{b1, b2, one_b1, one_b2, c1, c2, eps, beta, lr};
  this->for_each_piece([&](int i, Eigen::Index b, Eigen::Index e) {
    with_decay_flags(this->l2(i), this->wd(i), [&](auto L2, auto WD) {
      adam_loop<T, decltype(L2)::value, decltype(WD)::value>(e - b, params.values[i].data() + b,
                                                             grads.values[i].data() + b, m_[i].data() + b,
                                                             v_[i].data() + b, a);
    });
  });
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

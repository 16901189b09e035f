#include "reference/optim/optimizer.hpp"

#include <cmath>

#include <fmt/format.h>

#include "common/cpu_runtime.hpp"
#include "common/errors.hpp"
#include "reference/optim/adam.hpp"
#include "reference/optim/kfac.hpp"
#include "reference/optim/lion.hpp"
#include "reference/optim/sgd.hpp"

namespace wdlab::ref {

template <class T>
Optimizer<T>::Optimizer(const NetworkSpec& spec, const ParamStore<T>& like, const optim::RegConfig& reg)
    : spec_(spec), info_(like.info), reg_(reg) {
  const auto expected = spec.params();
  if (expected.size() != like.info.size())
    throw InternalError(fmt::format("optimizer: params hold {} tensors, the spec {}",
                                    like.info.size(), expected.size()));
  for (std::size_t i = 0; i < expected.size(); ++i) {
    if (expected[i].name != like.info[i].name)
      throw InternalError(fmt::format("optimizer: tensor {} is '{}', the spec says '{}'", i,
                                      like.info[i].name, expected[i].name));
    shapes_.emplace_back(like.values[i].rows(), like.values[i].cols());
    decay_.push_back(optim::decays(info_[i], spec, reg) ? 1 : 0);
    trainable_sizes_.push_back(info_[i].trainable() ? std::int64_t(like.values[i].size()) : 0);
  }
}

template <class T>
void Optimizer<T>::for_each_piece(const std::function<void(int, Eigen::Index, Eigen::Index)>& body) const {
  constexpr std::int64_t kGrain = std::int64_t(1) << 15;
  parallel_pieces(trainable_sizes_, kGrain,
                  [&](int i, std::int64_t begin, std::int64_t end) { body(i, Eigen::Index(begin), Eigen::Index(end)); });
}

template <class T>
void Optimizer<T>::step(ParamStore<T>& params, const ParamStore<T>& grads, double lr,
                        std::int64_t iteration) {
  auto check = [&](const ParamStore<T>& s, const char* what) {
    if (s.values.size() != shapes_.size())
      throw InternalError(fmt::format("{}::step: {} hold {} tensors, expected {}", name(), what,
                                      s.values.size(), shapes_.size()));
    for (std::size_t i = 0; i < shapes_.size(); ++i)
      if (s.values[i].rows() != shapes_[i].first || s.values[i].cols() != shapes_[i].second)
        throw InternalError(fmt::format("{}::step: {} '{}' is {}x{}, expected {}x{}", name(), what,
                                        info_[i].name, s.values[i].rows(), s.values[i].cols(),
                                        shapes_[i].first, shapes_[i].second));
  };
  check(params, "params");
  check(grads, "grads");
  if (!(std::isfinite(lr) && lr >= 0))
    throw InternalError(fmt::format("{}::step: learning rate {} is not finite and >= 0", name(), lr));
  if (iteration < 0) throw InternalError(fmt::format("{}::step: iteration {} < 0", name(), iteration));
  do_step(params, grads, T(lr), iteration);
}

template <class T>
void Optimizer<T>::init_factors(const std::vector<FactorStats<T>>&) {
  throw InternalError(name() + " has no curvature factors to initialize");
}

template <class T>
void Optimizer<T>::update_factors(const std::vector<FactorStats<T>>&, std::int64_t) {
  throw InternalError(name() + " has no curvature factors to update");
}

template <class T>
std::vector<Mat<T>> Optimizer<T>::zero_buffers() const {
  std::vector<Mat<T>> b(shapes_.size());
  for (std::size_t i = 0; i < shapes_.size(); ++i)
    if (trainable(int(i))) b[i] = Mat<T>::Zero(shapes_[i].first, shapes_[i].second);
  return b;
}

template <class T>
StateReader<T>::StateReader(const NamedTensors<T>& state, std::string optimizer)
    : state_(state), optimizer_(std::move(optimizer)), taken_(state.size(), 0) {}

template <class T>
Mat<T> StateReader<T>::take(const std::string& name, Eigen::Index rows, Eigen::Index cols) {
  for (std::size_t i = 0; i < state_.size(); ++i) {
    if (state_[i].first != name) continue;
    const Mat<T>& m = state_[i].second;
    if (m.rows() != rows || m.cols() != cols)
      throw DataError(name, fmt::format("{} state is {}x{}, expected {}x{}", optimizer_, m.rows(),
                                        m.cols(), rows, cols));
    taken_[i] = 1;
    return m;
  }
  throw DataError(name, fmt::format("missing from the {} state", optimizer_));
}

template <class T>
void StateReader<T>::finish() const {
  for (std::size_t i = 0; i < state_.size(); ++i)
    if (!taken_[i] && state_[i].first.rfind("optim.", 0) == 0)
      throw DataError(state_[i].first, fmt::format("is not part of the {} state", optimizer_));
}

template <class T>
std::unique_ptr<Optimizer<T>> make_optimizer(const optim::OptimConfig& cfg, const NetworkSpec& spec,
                                             const ParamStore<T>& like) {
  cfg.validate();
  optim::validate_scope(cfg.reg, spec);
  switch (cfg.kind) {
    case optim::OptimizerKind::sgd: return std::make_unique<Sgd<T>>(cfg.sgd, cfg.reg, spec, like);
    case optim::OptimizerKind::adam: return std::make_unique<Adam<T>>(cfg.adam, cfg.reg, spec, like);
    case optim::OptimizerKind::kfac_f:
    case optim::OptimizerKind::kfac_g:
      return std::make_unique<Kfac<T>>(cfg.kfac, cfg.reg, spec, like, curvature_kind(cfg.kind));
    case optim::OptimizerKind::lion: return std::make_unique<Lion<T>>(cfg.lion, cfg.reg, spec, like);
  }
  throw InternalError("make_optimizer: unknown optimizer kind");
}

template class Optimizer<double>;
template class Optimizer<float>;
template class StateReader<double>;
template class StateReader<float>;
template std::unique_ptr<Optimizer<double>> make_optimizer(const optim::OptimConfig&, const NetworkSpec&,
                                                           const ParamStore<double>&);
template std::unique_ptr<Optimizer<float>> make_optimizer(const optim::OptimConfig&, const NetworkSpec&,
                                                          const ParamStore<float>&);

}  // namespace wdlab::ref

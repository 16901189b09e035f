#include "reference/backend.hpp"

#include <cmath>
#include <optional>

#include <fmt/format.h>

#include "common/errors.hpp"
#include "common/train/optim_layout.hpp"
#include "reference/ops/finite.hpp"
#include "reference/ops/loss.hpp"
#include "reference/optim/kfac.hpp"

namespace wdlab::ref {

namespace {

constexpr std::uint64_t kFactorInitStep = std::uint64_t(1) << 40;  // RNG steps apart from training

template <class T>
io::Tensor to_tensor(std::vector<std::int64_t> shape, const std::vector<T>& v) {
  if constexpr (std::is_same_v<T, double>) return io::Tensor::from_f64(std::move(shape), v);
  else return io::Tensor::from_f32(std::move(shape), v);
}

template <class T>
std::vector<T> from_tensor(const io::SafetensorsFile& f, const std::string& name) {
  if constexpr (std::is_same_v<T, double>) return f.f64(name);
  else return f.f32(name);
}


}  // namespace

template <class T>
ReferenceBackend<T>::ReferenceBackend(NetworkSpec spec, ParamStore<T> params, const optim::OptimConfig& optim,
                                      std::uint64_t seed)
    : spec_(std::move(spec)), params_(std::move(params)), optim_cfg_(optim), seed_(seed) {
  optim_cfg_.validate();
  opt_ = make_optimizer<T>(optim_cfg_, spec_, params_);
}

template <class T>
std::string ReferenceBackend<T>::describe() const {
  return fmt::format("reference ({}), {}, {} trainable parameters", std::is_same_v<T, double> ? "double" : "float",
                     opt_->name(), spec_.num_trainable());
}

template <class T>
Mat<T> ReferenceBackend<T>::to_matrix(const train::HostBatch& b) const {
  const Eigen::Index rows = spec_.input.size();
  WDLAB_CHECK(Eigen::Index(b.images.size()) == rows * b.n, "batch size does not match the input shape");
  return Eigen::Map<const Eigen::MatrixXf>(b.images.data(), rows, b.n).template cast<T>();
}

template <class T>
std::vector<FactorStats<T>> ReferenceBackend<T>::statistics(const Mat<T>& x, std::int64_t step) const {
  const auto kind = optim_cfg_.kind == optim::OptimizerKind::kfac_f ? CurvatureKind::fisher : CurvatureKind::gauss_newton;
  return kfac_statistics(spec_, params_, x, kind, optim_cfg_.kfac.gn_probe_variance, seed_, std::uint64_t(step));
}

template <class T>
train::StepStats ReferenceBackend<T>::train_step(const train::HostBatch& b, double lr, std::int64_t iteration) {
  // The step's large buffers (batch, activations, cotangents, gradients) are the workspace's,
  // reused step after step (no allocation for them once the shapes are known).
  const Eigen::Index rows = spec_.input.size();
  WDLAB_CHECK(Eigen::Index(b.images.size()) == rows * b.n, "batch size does not match the input shape");
  Mat<T>& x = work_.x;
  x = Eigen::Map<const Eigen::MatrixXf>(b.images.data(), rows, b.n).template cast<T>();
  const Eigen::VectorXi labels = Eigen::Map<const Eigen::VectorXi>(b.labels.data(), b.n);
  NetForward<T>& fw = work_.fw;
  network_forward(spec_, params_, x, BnMode::train, fw);
  const auto ce = softmax_cross_entropy<T>(fw.logits(), labels);
  train::StepStats s{.loss = double(ce.loss), .correct = ce.correct, .finite = std::isfinite(double(ce.loss))};
  const auto reject = [&s](std::string tensor, std::string layer) {
    s.finite = false;
    s.nonfinite_tensor = std::move(tensor);
    s.nonfinite_layer = std::move(layer);
    return s;
  };
  if (!s.finite) return reject("loss", "");  // never step on a non-finite loss
  NetBackward<T>& bw = work_.bw;
  // K-FAC forms the direction of a dense layer it preconditions through gradient factors from the
  // layer's cotangent and input alone: its weight gradient is not formed, unless the step records
  // ‖g‖² (weight_steps). The step's result is the same bits either way.
  const bool kfac = is_kfac(optim_cfg_.kind);
  SkippedWeightGrads& skip = work_.skip;
  skip.layer.assign(spec_.layers.size(), 0);
  if (kfac && weight_steps_ != train::WeightSteps::record)
    for (int i = 0; i < int(spec_.layers.size()); ++i)
      skip.layer[std::size_t(i)] = spec_.layers[i].kind == LayerKind::dense && opt_->direction_from_factors(i, b.n);
  network_backward(spec_, params_, fw, ce.dlogits, InputGrad::skip, bw, Cotangents::needed, &skip);
  if (const int i = first_nonfinite_gradient(spec_, params_, fw, bw, &skip); i >= 0)
    return reject("gradient", params_.info[std::size_t(i)].name);
  if (kfac) {  // views into bw and fw, taken after the pass (which may resize bw.d_out)
    std::vector<GradientFactors<T>>& gf = work_.factors;
    gf.clear();
    for (int i = 0; i < int(spec_.layers.size()); ++i)
      if (spec_.layers[i].kind == LayerKind::dense)
        gf.push_back(GradientFactors<T>{i, &bw.d_out[std::size_t(i)], &fw.input_of(spec_, i)});
    opt_->set_gradient_factors(gf);
  }
  // Under skip a failed step must leave no trace: keep what the step changes (parameters, BN
  // running statistics, optimizer state) until it is known to be finite.
  std::optional<std::pair<ParamStore<T>, NamedTensors<T>>> before;
  if (policy_ == train::NonfinitePolicy::skip) before.emplace(params_, opt_->state());
  // Group rotation: θ_t of every weight tensor (one copy of the weights, rotation.hpp).
  std::vector<Mat<T>> theta_t;
  if (weight_steps_ == train::WeightSteps::record)
    for (std::size_t i = 0; i < params_.values.size(); ++i)
      if (params_.info[i].role == ParamRole::weight) theta_t.push_back(params_.values[i]);
  const auto undo = [&] {
    if (!before) return;
    params_ = std::move(before->first);
    opt_->load_state(before->second);
  };
  try {
    opt_->step(params_, bw.grads, lr, iteration);
  } catch (const NonFiniteError& e) {
    undo();
    return reject(e.tensor, e.layer);
  }
  update_running_stats(spec_, params_, fw);
  if (const int i = first_nonfinite(params_.values); i >= 0) {
    const std::string name = params_.info[std::size_t(i)].name;
    undo();
    return reject("update", name);
  }
  if (weight_steps_ == train::WeightSteps::record) {
    // ⟨θ_t,θ_{t+1}⟩, ‖θ_t‖², ‖θ_{t+1}‖², ‖g_t‖² (the loss gradient, before L2 / WD), in double.
    std::size_t w = 0;
    for (std::size_t i = 0; i < params_.values.size(); ++i) {
      if (params_.info[i].role != ParamRole::weight) continue;
      const Mat<double> a = theta_t[w++].template cast<double>(), b = params_.values[i].template cast<double>();
      s.weight_steps.push_back(train::WeightStep{(a.array() * b.array()).sum(), a.squaredNorm(), b.squaredNorm(),
                                                 bw.grads.values[i].template cast<double>().squaredNorm()});
    }
  }
  if (const auto* k = dynamic_cast<const Kfac<T>*>(opt_.get())) {
    const auto& raises = k->damping_raises();
    for (; raises_reported_ < raises.size(); ++raises_reported_) {
      const DampingRaise& r = raises[raises_reported_];
      s.events.push_back({"damping_raised", r.layer_name,
                          fmt::format("factor {} not positive definite at iteration {}: damping {:.3g} raised to "
                                      "{:.3g} ({} raises)", r.factor, r.iteration, r.requested, r.used, r.raises)});
    }
  }
  // The official code re-estimates the factors on the same batch after the update, with a fresh
  // sample (MATH.md §9.3 item 6, §12 item 14). A non-finite estimate is rejected whole
  // (update_factors checks before it changes anything); the parameter step stands.
  if (opt_->wants_factors(iteration)) {
    try {
      opt_->update_factors(statistics(x, iteration), iteration);
    } catch (const NonFiniteError& e) {
      return reject(e.tensor, e.layer);
    }
  }
  return s;
}

template <class T>
bool ReferenceBackend<T>::wants_factor_init() const {
  return is_kfac(optim_cfg_.kind) && opt_->wants_factor_init();
}

template <class T>
void ReferenceBackend<T>::accumulate_factor_init(const train::HostBatch& b, std::int64_t index) {
  auto st = statistics(to_matrix(b), std::int64_t(kFactorInitStep) + index);
  if (init_sum_.empty()) {
    init_sum_ = std::move(st);
  } else {
    for (std::size_t i = 0; i < st.size(); ++i) {
      init_sum_[i].A += st[i].A;
      init_sum_[i].S += st[i].S;
    }
  }
  ++init_batches_;
}

template <class T>
void ReferenceBackend<T>::finish_factor_init() {
  WDLAB_CHECK(init_batches_ > 0, "factor initialization saw no batch");
  for (auto& f : init_sum_) {
    f.A /= T(init_batches_);
    f.S /= T(init_batches_);
  }
  opt_->init_factors(init_sum_);
  init_sum_.clear();
  init_batches_ = 0;
}

template <class T>
train::EvalStats ReferenceBackend<T>::evaluate(const train::HostBatch& b) {
  const Mat<T> x = to_matrix(b);
  const Eigen::VectorXi labels = Eigen::Map<const Eigen::VectorXi>(b.labels.data(), b.n);
  const auto fw = network_forward(spec_, params_, x, BnMode::eval);
  const auto ce = softmax_cross_entropy<T>(fw.logits(), labels);
  return train::EvalStats{.loss_sum = double(ce.loss) * b.n, .correct = ce.correct, .n = b.n};
}

template <class T>
std::vector<double> ReferenceBackend<T>::logits(const train::HostBatch& b) {
  const auto fw = network_forward(spec_, params_, to_matrix(b), BnMode::eval);
  const Mat<T>& z = fw.logits();  // classes × n, one column per example
  std::vector<double> out(std::size_t(z.size()));
  for (Eigen::Index i = 0; i < z.cols(); ++i)
    for (Eigen::Index k = 0; k < z.rows(); ++k) out[std::size_t(i * z.rows() + k)] = double(z(k, i));
  return out;
}

template <class T>
std::vector<std::pair<std::string, double>> ReferenceBackend<T>::weight_norms() const {
  std::vector<std::pair<std::string, double>> out;
  for (std::size_t i = 0; i < params_.info.size(); ++i)
    if (params_.info[i].role == ParamRole::weight)
      out.emplace_back(params_.info[i].name, double(params_.values[i].template cast<double>().norm()));
  return out;
}

template <class T>
io::SafetensorsFile ReferenceBackend<T>::state() const {
  io::SafetensorsFile f;
  for (std::size_t i = 0; i < params_.info.size(); ++i)
    f.tensors[params_.info[i].name] =
        to_tensor<T>(params_.info[i].shape, to_pytorch_order(params_.info[i], params_.values[i]));
  // Optimizer state in PyTorch's layout (common/train/optim_layout.hpp): row-major, per-parameter
  // state with its parameter's shape.
  for (const auto& [name, m] : opt_->state()) {
    std::vector<T> v(std::size_t(m.size()));
    Eigen::Map<Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>(v.data(), m.rows(), m.cols()) = m;
    const ParamInfo* p = train::state_param(name, params_.info);
    f.tensors[name] = to_tensor<T>(p ? p->shape : train::plain_state_shape(m.rows(), m.cols()), v);
  }
  train::mark_optim_layout(f);
  f.metadata["backend"] = "reference";
  f.metadata["precision"] = std::is_same_v<T, double> ? "double" : "float";
  return f;
}

template <class T>
void ReferenceBackend<T>::load_state(const io::SafetensorsFile& file) {
  io::SafetensorsFile f = file;
  train::upgrade_optim_layout(f, params_.info);  // a checkpoint of optim_layout 1 is converted
  const std::string want = std::is_same_v<T, double> ? "double" : "float";
  if (f.metadata.count("precision") && f.metadata.at("precision") != want)
    throw DataError(f.source, fmt::format("precision is {}, this run uses {}", f.metadata.at("precision"), want));
  ParamStore<T> p = params_;
  for (std::size_t i = 0; i < p.info.size(); ++i) {
    const auto& t = f.at(p.info[i].name);
    if (t.shape != p.info[i].shape)
      throw DataError(f.source, fmt::format("tensor \"{}\" has the wrong shape", p.info[i].name));
    p.values[i] = from_pytorch_order<T>(p.info[i], from_tensor<T>(f, p.info[i].name));
  }
  NamedTensors<T> st;
  for (const auto& [name, t] : f.tensors) {
    if (name.rfind("optim.", 0) != 0) continue;
    const auto v = from_tensor<T>(f, name);
    if (const ParamInfo* p = train::state_param(name, params_.info)) {
      if (t.shape != p->shape)
        throw DataError(f.source, fmt::format("optimizer tensor \"{}\" has the wrong shape (expected {}'s)", name, p->name));
      st.emplace_back(name, from_pytorch_order<T>(*p, v));
    } else {
      const auto [rows, cols] = train::plain_state_matrix(t, name);
      st.emplace_back(name, Eigen::Map<const Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>(
                                v.data(), rows, cols));
    }
  }
  opt_->load_state(st);
  params_ = std::move(p);
}

template class ReferenceBackend<double>;
template class ReferenceBackend<float>;

}  // namespace wdlab::ref

#pragma once
// The optimizer interface (ensmallen's shape, STYLE.md #13): one update rule per class, its
// formula in the class comment. An optimizer owns its state (momentum, moments, K-FAC factors),
// reads the scheduled learning rate η_k each step and never touches running statistics.
//
// The training loop, for k = 0, 1, 2, ...:
//   if (opt.wants_factor_init()) opt.init_factors(mean over one data pass of kfac_statistics)
//   g = ∇L(θ_k) on the minibatch;  opt.step(θ, g, lr_at(schedule, k, ipe), k)
//   if (opt.wants_factors(k)) opt.update_factors(kfac_statistics(θ_{k+1}, same minibatch), k)
// so factor statistics are taken after the update, on the same minibatch (MATH.md §9.3 item 6).
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "common/network_spec.hpp"
#include "reference/eigen_types.hpp"
#include "reference/net/network.hpp"
#include "reference/net/params.hpp"
#include "common/optim/optim_config.hpp"

namespace wdlab::ref {

/// dW = D Xᵀ (and db = D 1) for the dense layer `layer` of the spec. Views: the caller keeps D
/// and X alive until the step that reads them has returned.
template <class T>
struct GradientFactors {
  int layer = 0;
  const Mat<T>* D = nullptr;  // out × B
  const Mat<T>* X = nullptr;  // in × B
};

/// Checkpointable state: names under "optim." (e.g. "optim.momentum.features.0.weight"), held
/// here as compute-layout matrices; the backend writes them in PyTorch's layout
/// (common/train/optim_layout.hpp, README "Use a checkpoint in PyTorch").
template <class T>
using NamedTensors = std::vector<std::pair<std::string, Mat<T>>>;

/// Calls f(std::bool_constant<L2>{}, std::bool_constant<WD>{}) with one tensor's decay as
/// compile-time flags, so an update loop carries no branch on them (GCC does not vectorize a loop
/// with one). L2 and WD never hold together: they are two values of one Regularization.
template <class F>
void with_decay_flags(bool l2, bool wd, F&& f) {
  if (l2) f(std::true_type{}, std::false_type{});
  else if (wd) f(std::false_type{}, std::true_type{});
  else f(std::false_type{}, std::false_type{});
}

template <class T>
class Optimizer {
 public:
  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  /// θ ← update(θ, g) in place. lr is the scheduled η_k; iteration k counts completed steps
  /// (0 for the first). Checks that params and grads have the layout the optimizer was made
  /// for (InternalError otherwise), then runs the rule.
  void step(ParamStore<T>& params, const ParamStore<T>& grads, double lr, std::int64_t iteration);

  virtual std::string name() const = 0;
  /// Everything needed to continue bit for bit after load_state().
  virtual NamedTensors<T> state() const = 0;
  /// Replaces the state; entries without the "optim." prefix are ignored, a missing entry, a
  /// wrong shape or an unknown "optim." entry throws DataError and leaves the state unchanged.
  virtual void load_state(const NamedTensors<T>& state) = 0;

  /// K-FAC only: whether update_factors must follow step(…, iteration).
  virtual bool wants_factors(std::int64_t iteration) const { (void)iteration; return false; }
  /// K-FAC with optim::FactorInit::data_pass only: whether init_factors is still owed.
  virtual bool wants_factor_init() const { return false; }
  /// Sets the factors to the given (already averaged) statistics. Throws InternalError for
  /// optimizers without curvature factors.
  virtual void init_factors(const std::vector<FactorStats<T>>& mean_stats);
  /// Folds in fresh statistics. Throws InternalError unless wants_factors(iteration).
  virtual void update_factors(const std::vector<FactorStats<T>>& stats, std::int64_t iteration);
  /// Optional, before step(): the minibatch factors of dense layers' gradients, dW = D Xᵀ and
  /// db = D 1 (D the cotangent at the layer's output, X its input), for the next step only.
  /// K-FAC then preconditions as (S̃⁻¹D)(Ã⁻¹X̄)ᵀ, which costs O(B) instead of O(width) per
  /// weight when the batch B is smaller than the layer; others ignore them.
  virtual void set_gradient_factors(const std::vector<GradientFactors<T>>& factors) { (void)factors; }
  /// Whether the next step, given a batch of B examples' gradient factors for dense layer `layer`,
  /// forms that layer's direction from the factors alone: then it reads neither the layer's weight
  /// nor its bias gradient, and the backward pass need not form them (SkippedWeightGrads).
  virtual bool direction_from_factors(int layer, Eigen::Index batch) const {
    (void)layer;
    (void)batch;
    return false;
  }

  /// Whether tensor i (ParamStore order) is regularized (decays(info[i], spec, reg)).
  bool decays(int i) const { return decay_[i] != 0; }
  const optim::RegConfig& reg() const { return reg_; }

 protected:
  Optimizer(const NetworkSpec& spec, const ParamStore<T>& like, const optim::RegConfig& reg);
  virtual void do_step(ParamStore<T>& params, const ParamStore<T>& grads, T lr,
                       std::int64_t iteration) = 0;

  bool trainable(int i) const { return info_[i].trainable(); }
  bool l2(int i) const { return reg_.kind == optim::Regularization::l2 && decays(i); }
  bool wd(int i) const { return reg_.kind == optim::Regularization::wd && decays(i); }
  T beta() const { return T(reg_.weight_decay); }
  /// Zero matrices shaped like every trainable tensor (zero-sized for running statistics).
  std::vector<Mat<T>> zero_buffers() const;

  /// An elementwise update's loop: body(i, begin, end) over entries [begin, end) of every trainable
  /// tensor i, in pieces of at most 32768 entries spread over the engine's threads (parallel_pieces:
  /// the same bits on any thread count). The updates are memory-bound (SGD reads θ, ∇, v and writes
  /// θ, v: 20 bytes per float parameter), so one core leaves the others' memory bandwidth unused.
  void for_each_piece(const std::function<void(int i, Eigen::Index begin, Eigen::Index end)>& body) const;

  NetworkSpec spec_;
  std::vector<ParamInfo> info_;
  std::vector<std::pair<Eigen::Index, Eigen::Index>> shapes_;
  optim::RegConfig reg_;

 private:
  std::vector<char> decay_;
  std::vector<std::int64_t> trainable_sizes_;  // entries of tensor i, 0 where not trainable
};

/// Reads a load_state() argument into temporaries; commit only after finish() succeeds.
template <class T>
class StateReader {
 public:
  StateReader(const NamedTensors<T>& state, std::string optimizer);
  /// The entry `name`, which must be rows × cols (DataError otherwise).
  Mat<T> take(const std::string& name, Eigen::Index rows, Eigen::Index cols);
  T scalar(const std::string& name) { return take(name, 1, 1)(0, 0); }
  /// DataError if an "optim." entry was not taken (another optimizer's checkpoint).
  void finish() const;

 private:
  const NamedTensors<T>& state_;
  std::string optimizer_;
  std::vector<char> taken_;
};

template <class T>
Mat<T> scalar_state(T value) {
  return Mat<T>::Constant(1, 1, value);
}

/// Validates cfg and its scope against spec, then builds the optimizer for params shaped like
/// `like`: Sgd, Adam, Kfac (kfac_f: Fisher statistics, kfac_g: Gauss–Newton statistics) or Lion.
template <class T>
std::unique_ptr<Optimizer<T>> make_optimizer(const optim::OptimConfig& cfg, const NetworkSpec& spec,
                                             const ParamStore<T>& like);

}  // namespace wdlab::ref

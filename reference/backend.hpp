#pragma once
// The reference backend: the Eigen engine and optimizers behind the trainer's Backend interface,
// in double (the oracle) or float (faster CPU runs).
#include <memory>

#include "common/network_spec.hpp"
#include "common/train/backend.hpp"
#include "reference/net/network.hpp"
#include "common/optim/optim_config.hpp"
#include "reference/optim/optimizer.hpp"

namespace wdlab::ref {

template <class T>
class ReferenceBackend final : public train::Backend {
 public:
  ReferenceBackend(NetworkSpec spec, ParamStore<T> params, const optim::OptimConfig& optim,
                   std::uint64_t seed);
  std::string describe() const override;
  train::StepStats train_step(const train::HostBatch& batch, double lr, std::int64_t iteration) override;
  bool wants_factor_init() const override;
  void accumulate_factor_init(const train::HostBatch& batch, std::int64_t index) override;
  void finish_factor_init() override;
  train::EvalStats evaluate(const train::HostBatch& batch) override;
  std::vector<double> logits(const train::HostBatch& batch) override;
  std::vector<std::pair<std::string, double>> weight_norms() const override;
  io::SafetensorsFile state() const override;
  void load_state(const io::SafetensorsFile& file) override;
  void set_nonfinite_policy(train::NonfinitePolicy policy) override { policy_ = policy; }
  /// reference/backend_measure.cpp: the numbers of reference/net/metrics.hpp.
  train::MeasureSummary measure_summary(const train::HostBatch& probe, const train::MeasureRequest& req) override;
  void record_weight_steps(train::WeightSteps mode) override { weight_steps_ = mode; }
  void rescale_weights(const train::NamedValues& targets) override;

  const NetworkSpec& spec() const { return spec_; }
  const ParamStore<T>& params() const { return params_; }
  Optimizer<T>& optimizer() { return *opt_; }

 private:
  Mat<T> to_matrix(const train::HostBatch& b) const;
  std::vector<FactorStats<T>> statistics(const Mat<T>& x, std::int64_t step) const;

  NetworkSpec spec_;
  ParamStore<T> params_;
  optim::OptimConfig optim_cfg_;
  std::unique_ptr<Optimizer<T>> opt_;
  std::uint64_t seed_;
  std::vector<FactorStats<T>> init_sum_;
  std::int64_t init_batches_ = 0;
  train::NonfinitePolicy policy_ = train::NonfinitePolicy::abort;
  std::size_t raises_reported_ = 0;  // K-FAC damping raises already turned into step events
  train::WeightSteps weight_steps_ = train::WeightSteps::off;
  /// train_step's workspace: it only grows, and is reused by every step (its contents never
  /// carry from one step into the next's results).
  struct StepWorkspace {
    Mat<T> x;
    NetForward<T> fw;
    NetBackward<T> bw;
    SkippedWeightGrads skip;                  // layers whose weight gradient K-FAC does not read
    std::vector<GradientFactors<T>> factors;  // views into fw and bw
  };
  StepWorkspace work_;
};

}  // namespace wdlab::ref

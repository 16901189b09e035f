#include "apps/run_setup.hpp"

#include "apps/cuda_setup.hpp"

#include <fmt/format.h>

#include "common/data/cifar.hpp"
#include "common/data/idx.hpp"
#include "common/data/transforms.hpp"
#include "common/errors.hpp"
#include "reference/backend.hpp"

namespace wdlab::app {

namespace {

data::Dataset load_split(const DataConfig& d, data::Split split) {
  if (d.dataset == "fashion-mnist")
    return d.data_dir.empty() ? data::load_fashion_mnist(split) : data::load_fashion_mnist(split, d.data_dir);
  if (d.data_dir.empty())
    throw UsageError("data_dir", fmt::format("dataset {} needs data_dir (nothing is downloaded)", d.dataset));
  if (d.dataset == "mnist") return data::load_mnist(split, d.data_dir);
  if (d.dataset == "cifar10") return data::load_cifar10(split, d.data_dir);
  return data::load_cifar100(split, d.data_dir);
}

data::Dataset first(const data::Dataset& d, int n, const std::string& name) {
  if (n <= 0 || std::size_t(n) >= d.size()) return d;
  std::vector<std::uint32_t> ids(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) ids[i] = std::uint32_t(i);
  return data::select(d, ids, name);
}

}  // namespace

train::Datasets load_datasets(const DataConfig& d, std::uint64_t seed, data::ChannelStats* applied) {
  train::Datasets out;
  data::Dataset train = first(load_split(d, data::Split::train), d.train_subset, d.dataset + "-train");
  out.test = first(load_split(d, data::Split::test), d.test_subset, d.dataset + "-test");
  if (d.validation > 0) {
    if (std::size_t(d.validation) >= train.size())
      throw UsageError("validation", fmt::format("{} leaves no training examples (of {})", d.validation, train.size()));
    auto h = data::split_holdout(train, std::size_t(d.validation), seed);
    out.train = std::move(h.train);
    out.val = std::move(h.val);
  } else {
    out.train = std::move(train);
  }
  const auto stats = data::channel_stats(out.train);
  data::normalize(out.train, stats);
  if (out.val.size()) data::normalize(out.val, stats);
  data::normalize(out.test, stats);
  if (applied) *applied = stats;
  return out;
}

NetworkSpec build_network(const ExperimentConfig& c, const data::Dataset& train) {
  return zoo::build(c.model, Shape{train.channels, train.height, train.width}, train.num_classes);
}

std::unique_ptr<train::Backend> make_backend(const ExperimentConfig& c, const NetworkSpec& spec) {
  if (c.backend == BackendKind::cuda) return make_cuda_backend(c, spec);
  if (c.precision == Precision::float64)
    return std::make_unique<ref::ReferenceBackend<double>>(spec, ref::init_params<double>(spec, c.seed, c.init),
                                                           c.optim, c.seed);
  return std::make_unique<ref::ReferenceBackend<float>>(spec, ref::init_params<float>(spec, c.seed, c.init),
                                                        c.optim, c.seed);
}

train::TrainerConfig trainer_config(const ExperimentConfig& c) {
  train::TrainerConfig t;
  t.epochs = c.epochs;
  t.batch_size = c.batch_size;
  t.eval_batch_size = c.eval_batch_size;
  t.seed = c.seed;
  t.augment = c.data.augment;
  t.checkpoint_every = c.checkpoint_every;
  t.keep_checkpoints = c.keep_checkpoints;
  t.on_nonfinite = c.on_nonfinite;
  t.divergence_factor = c.divergence_factor;
  t.metrics = c.metrics;
  const optim::Schedule s = c.schedule;
  t.lr = [s](std::int64_t k, std::int64_t per_epoch) { return optim::lr_at(s, k, per_epoch); };
  return t;
}

train::NormTransfer norm_transfer(const ExperimentConfig& c, const NetworkSpec& spec) {
  train::NormTransfer t;
  if (c.wn.scope == "none") return t;
  t.source = c.wn.norms_from;
  for (const auto& p : spec.params()) {
    if (p.role != ParamRole::weight) continue;
    const bool conv = optim::scope_family(spec, p.layer) == optim::ScopeFamily::conv;
    if (c.wn.scope == "conv" ? !conv : c.wn.scope == "fc" ? conv : false) continue;
    if (!spec.followed_by_bn(p.layer))
      throw UsageError("wn.scope", fmt::format("{} is in scope {} but not followed by BN: rescaling it would change "
                                               "the network's function", p.name, c.wn.scope));
    t.params.push_back(p.name);
  }
  if (t.params.empty()) throw UsageError("wn.scope", fmt::format("no weight tensor of {} is in scope {}", spec.model, c.wn.scope));
  train::check_norm_transfer(t);
  return t;
}

}  // namespace wdlab::app

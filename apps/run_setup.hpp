#pragma once
// From a resolved ExperimentConfig to what the trainer needs: data sets, network, backend.
#include <memory>

#include "apps/experiment_config.hpp"
#include "common/data/transforms.hpp"
#include "common/network_spec.hpp"
#include "common/train/backend.hpp"
#include "common/train/trainer.hpp"

namespace wdlab::app {

/// Loads train/test, takes the subsets, splits off validation (shared RNG, purpose split) and
/// normalizes every split with the training split's per-channel mean and std.
/// `applied`, when given, receives the mean and std that were applied.
train::Datasets load_datasets(const DataConfig& d, std::uint64_t seed, data::ChannelStats* applied = nullptr);

NetworkSpec build_network(const ExperimentConfig& c, const data::Dataset& train);

std::unique_ptr<train::Backend> make_backend(const ExperimentConfig& c, const NetworkSpec& spec);

/// The learning-rate function for TrainerConfig from the config's schedule.
train::TrainerConfig trainer_config(const ExperimentConfig& c);

/// wn: the weight tensors of c.wn.scope (all when "all") and the source run; inactive for scope
/// none. UsageError (wn.scope) if a tensor in scope is not followed by BN or the scope is empty;
/// DataError if the source run has no metrics.jsonl with their norms.
train::NormTransfer norm_transfer(const ExperimentConfig& c, const NetworkSpec& spec);

}  // namespace wdlab::app

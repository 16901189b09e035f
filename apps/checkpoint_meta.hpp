#pragma once
// What a checkpoint records besides its tensors, so that it is usable elsewhere without guessing
// (README "Use a checkpoint in PyTorch"; scripts/torch_load.py reads both):
//   "network"         the layer graph the backend ran (kind, name, inputs, shapes, conv/pool/BN
//                     settings), from the same NetworkSpec;
//   "input_pipeline"  the data set, its directory and content hashes, the layout (NCHW), the
//                     per-channel mean and std that were applied, the split and the augmentation.
#include <cstdint>

#include <nlohmann/json.hpp>

#include "apps/experiment_config.hpp"
#include "common/data/transforms.hpp"
#include "common/network_spec.hpp"
#include "common/train/trainer.hpp"

namespace wdlab::app {

/// {"model", "input": [C,H,W], "classes", "layers": [{"kind", "name", "inputs", "in", "out",
/// "bias", "kernel", "stride", "pad", "affine", "bn_eps", "bn_momentum"}, ...]}; a layer's fields
/// beyond kind/name/inputs/in/out only where its kind uses them.
nlohmann::ordered_json network_json(const NetworkSpec& spec);

/// The input pipeline of a run whose data load_datasets(cfg.data, cfg.seed, &stats) produced.
nlohmann::ordered_json input_pipeline_json(const ExperimentConfig& cfg, const train::Datasets& data,
                                           const data::ChannelStats& stats);

}  // namespace wdlab::app

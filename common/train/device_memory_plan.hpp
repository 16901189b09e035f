#pragma once
// What a training run on the CUDA backend holds in device memory, per buffer class, computed on
// the host from the network and the run's sizes (no GPU needed): `wdlab train --dry-run` prints
// it, and `wdlab train --backend cuda` refuses a run whose plan exceeds the device's free memory
// instead of failing with an out-of-memory error hours in. The classes mirror the allocations of
// cuda/backend_net.cpp (activations), cuda/backend.cpp (parameters, gradients, SGD/Adam state),
// cuda/kfac.cpp (K-FAC blocks) and cuda/backend_data.cpp (resident data); cuDNN's workspace is
// counted at its limit. Training keeps one activation set for the training batch and one
// forward-only set for the evaluation batch (a new size frees the old set of its use first).
#include <cstdint>
#include <string>
#include <vector>

#include "common/network_spec.hpp"
#include "common/optim/optim_config.hpp"

namespace wdlab::train {

struct DeviceMemoryInput {
  int train_batch = 128;
  int eval_batch = 1000;
  optim::OptimizerKind optimizer = optim::OptimizerKind::sgd;
  /// --on-nonfinite skip: a device copy of parameters and optimizer state per step.
  bool snapshot = false;
  std::int64_t resident_examples = 0;  // training + validation + test images on the device
  std::size_t conv_workspace_limit = std::size_t(1) << 30;
};

struct MemoryLine {
  std::string what;
  std::int64_t bytes = 0;
};

struct DeviceMemoryPlan {
  std::vector<MemoryLine> lines;
  std::int64_t total() const;
  /// One line per class ("  train activations (batch 128)    1.23 GiB") and the total.
  std::string describe() const;
};

/// What one layer holds beyond its output (and, in training, its cotangent), in elements: the one
/// list both this plan and CudaBackend::activations() allocate from.
struct LayerExtraBuffers {
  std::int64_t bn_statistics = 0;  // doubles: mean, var, invstd per channel (train-mode BN)
  std::int64_t xhat = 0;           // floats: x̂ (BN with γ, β; its backward reads it)
  std::int64_t argmax = 0;         // int32: max-pool winners (its backward scatters to them)
};
/// `backward`: a training pass (evaluation normalizes with the running statistics, so BN keeps
/// nothing; max pooling's forward kernel writes its winners in both modes).
LayerExtraBuffers layer_extra_buffers(const Layer& l, int N, bool backward);

/// Doubles of reduction scratch one activation set holds at batch N (the largest of the
/// launches' needs, common/reduction_layout.hpp): CudaBackend allocates exactly this many.
std::int64_t reduction_scratch_doubles(const NetworkSpec& spec, int N, bool backward);

/// Bytes of one activation set at batch N: `backward` adds what a training pass needs beyond the
/// forward (cotangents, BN x̂ and statistics, the BN backward sums).
std::int64_t activation_bytes(const NetworkSpec& spec, int N, bool backward);

DeviceMemoryPlan plan_device_memory(const NetworkSpec& spec, const DeviceMemoryInput& in);

}  // namespace wdlab::train

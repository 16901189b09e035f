#pragma once
// Checkpoint layouts shared with the reference backend, so checkpoints are interchangeable:
//   parameters: PyTorch names, shapes and row-major order, which is also how the CUDA backend
//               keeps them on the device (conv [K,C,R,S] = cuDNN KCRS, dense [out,in]);
//   optimizer state ("optim." names): PyTorch's layout too (common/train/optim_layout.hpp,
//               optim_layout 2): per-parameter state with its parameter's shape, row-major, which
//               is the order the device buffers hold; a checkpoint of layout 1 (the transpose,
//               [cols, rows]) is converted by train::upgrade_optim_layout before these read it.
// Plain C++, tested on the CPU against the reference's own state().
#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "common/io/safetensors.hpp"
#include "common/network_spec.hpp"

namespace wdlab::cuda {

/// rows × cols of the reference's compute matrix: shape[0] × Π shape[1:] (n × 1 for vectors).
std::pair<std::int64_t, std::int64_t> compute_matrix_shape(const ParamInfo& p);

/// An optimizer-state tensor of parameter p from values in PyTorch order: p's shape, the values
/// unchanged.
io::Tensor optimizer_state_tensor(const ParamInfo& p, std::span<const float> pytorch_order);

/// The inverse: PyTorch-order values of an optimizer-state tensor `t` named `name` of parameter p.
/// DataError naming the tensor if its shape or dtype is not what optimizer_state_tensor writes.
std::vector<float> optimizer_state_values(const ParamInfo& p, const io::Tensor& t,
                                          const std::string& name);

/// A scalar state entry (Adam's step count "optim.adam.t"), 0-d as the reference writes it.
io::Tensor scalar_state_tensor(float value);

}  // namespace wdlab::cuda

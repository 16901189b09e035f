#pragma once
// Named parameter tensors of a NetworkSpec (PyTorch state_dict names). Values are Eigen matrices
// in the reference's compute layout: dense weight out×in, conv weight K×(C·R·S) with column
// (c·R + r)·S + s (row-major storage of either is PyTorch's order); vectors are n×1.
#include <cstdint>
#include <string>
#include <vector>

#include "common/network_spec.hpp"
#include "reference/eigen_types.hpp"
#include "reference/init.hpp"

namespace wdlab::ref {

template <class T>
struct ParamStore {
  std::vector<ParamInfo> info;   // spec.params(), same order as values
  std::vector<Mat<T>> values;
  std::vector<LayerSlots> slots;  // per layer of the spec (common/network_spec.hpp)

  /// All tensors of the spec, zero-filled, with their compute-layout shapes.
  static ParamStore zeros(const NetworkSpec& spec);
  int find(const std::string& name) const;  // −1 if absent
  Mat<T>& at(const std::string& name);
  const Mat<T>& at(const std::string& name) const;
  std::int64_t numel() const;
  /// Same tensors, all zero (gradients, momentum buffers).
  ParamStore zeros_like() const;
  template <class U> ParamStore<U> cast() const;
};


/// Weights from the shared Philox RNG (purpose init, step = tensor index, index = element in
/// PyTorch order); biases and β zero, γ and running_var one, running_mean zero.
/// Glorot: U(±√(6/(fan_in+fan_out))), fan = channels·R·S (TF's variance_scaling fan_avg).
template <class T>
ParamStore<T> init_params(const NetworkSpec& spec, std::uint64_t seed, Init init);

/// Copies between the compute layout and PyTorch's row-major order (for checkpoints).
template <class T> std::vector<T> to_pytorch_order(const ParamInfo& info, const Mat<T>& value);
template <class T> Mat<T> from_pytorch_order(const ParamInfo& info, const std::vector<T>& data);

}  // namespace wdlab::ref

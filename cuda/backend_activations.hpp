#pragma once
// CudaBackend's per-batch-size device buffers (private to cuda/backend*.cpp).
#include <cstdint>
#include <vector>

#include "cuda/backend.hpp"

namespace wdlab::cuda {

/// Which cotangents backward() stores: those later work reads (weight layers' for K-FAC and
/// the metrics, the input's where dinput is allocated), or every layer's (a capture: the
/// crosscheck compares each). They differ only for a BN whose ReLU's backward is fused
/// (relu_backward_fused): its cotangent dŷ = dr ⊙ 1[y > 0] is then applied inside BN's kernels
/// and stored only under every_layer.
enum class CotangentsKept { needed, every_layer };

struct CudaBackend::Activations {
  int N = 0;
  CotangentsKept kept = CotangentsKept::needed;
  DeviceBuffer<float> input;               // N·C·H·W
  DeviceBuffer<std::int32_t> labels;       // N
  std::vector<DeviceBuffer<float>> out;    // per layer output, NCHW
  std::vector<DeviceBuffer<float>> dout;   // per layer cotangent (same shape as out)
  std::vector<char> dout_written;          // backward: whether dout[i] holds a value yet
  std::vector<DeviceBuffer<float>> xhat;   // BN with γ/β: x̂ (without, the output is x̂)
  std::vector<DeviceBuffer<double>> bn;    // BN: mean[C], var[C], invstd[C]
  std::vector<DeviceBuffer<std::int32_t>> argmax;  // max-pool winners
  DeviceBuffer<double> loss, correct;      // per example
  DeviceBuffer<double> partial;            // reduction scratch
  DeviceBuffer<double> sums;               // BN backward: Σdy[C], Σdy⊙x̂[C]
  DeviceBuffer<float> dinput;              // capture only: ∂L/∂input (empty otherwise: no
                                           // optimizer needs it, so steps skip it)
  char dinput_written = 0;                 // backward: whether dinput holds a value yet
};

}  // namespace wdlab::cuda

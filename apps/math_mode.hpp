#pragma once
// The CUDA backend's arithmetic, as a config key (`math`) and a bench option (`--tf32`).
#include <string>

namespace wdlab::app {

/// FP32 everywhere (the default), or TF32 tensor-core math for convolutions and GEMMs (cuda only,
/// when asked). Pinned explicitly in both wdlab and the PyTorch script (PyTorch enables TF32 for
/// cuDNN by default). bf16 is not offered.
enum class MathMode { fp32, tf32 };
inline std::string to_string(MathMode m) { return m == MathMode::fp32 ? "fp32" : "tf32"; }

}  // namespace wdlab::app

#pragma once
// Host-side planning of the cuDNN convolutions, plain C++ so CI tests it without a GPU:
//   - conv_descriptor_params: what we pass to cuDNN's tensor, filter and convolution descriptors,
//     built from Conv2dGeometry and nothing else (STYLE.md #2);
//   - choose_algorithm: the policy that picks one algorithm from cuDNN's ranked candidates
//     (deterministic-only in crosscheck mode, within a workspace limit, no TF32 unless asked),
//     which refuses loudly rather than falling back silently;
//   - AlgoCache: one choice per (pass, shape, math, policy), recorded with its determinism.
// cuda/conv.cpp turns these into cuDNN calls.
#include <cstddef>
#include <map>
#include <span>
#include <string>
#include <tuple>
#include <vector>

#include "common/geometry.hpp"

namespace wdlab::cuda {

/// fp32: plain float FMA math (cuDNN CUDNN_FMA_MATH, cuBLAS default); tf32: tensor-core TF32,
/// opt-in only (DESIGN.md "Numerics").
enum class MathMode { fp32, tf32 };
/// fastest: cuDNN's ranking; deterministic: only algorithms whose results do not depend on
/// scheduling (crosscheck mode, shared/GPU.md); exact: deterministic and transform-free (GEMM,
/// implicit GEMM, direct: every output a plain sum of products; no FFT or Winograd, whose
/// transforms round even integer data), for the crosscheck's exact mode.
enum class AlgoPolicy { fastest, deterministic, exact };
enum class ConvPass { forward, backward_data, backward_filter };
/// The math type cuDNN reports for a candidate (cudnnMathType_t): fma (CUDNN_FMA_MATH, plain
/// float FMA), default_math (CUDNN_DEFAULT_MATH: what cuDNN 9 may report for FP32 candidates of a
/// descriptor set to FMA; the descriptor's FMA setting is what runs), tensor_op (either
/// CUDNN_TENSOR_OP_MATH variant: TF32 tensor cores for float data).
enum class CandidateMath { fma, default_math, tensor_op };

std::string to_string(MathMode m);
std::string to_string(AlgoPolicy p);
std::string to_string(ConvPass p);
std::string to_string(CandidateMath m);
/// Whether a candidate of math type `c` may run under `m`: fp32 takes fma and default_math (no
/// tensor cores: the descriptor says FMA), tf32 takes all three.
bool math_allowed(MathMode m, CandidateMath c);

/// A packed NCHW tensor descriptor: dims and strides in elements.
struct TensorDims {
  int n = 0, c = 0, h = 0, w = 0;
  int stride_n = 0, stride_c = 0, stride_h = 0, stride_w = 0;
  bool operator==(const TensorDims&) const = default;
};

/// Packed NCHW: stride_w = 1, stride_h = W, stride_c = H·W, stride_n = C·H·W.
TensorDims packed_nchw(int n, int c, int h, int w);

struct ConvDescriptorParams {
  TensorDims x;              // N, C, H, W
  TensorDims y;              // N, K, P, Q
  int k = 0, c = 0, r = 0, s = 0;  // filter, KCRS (PyTorch's [K, C, R, S])
  int pad_h = 0, pad_w = 0, stride_h = 1, stride_w = 1, dilation_h = 1, dilation_w = 1;
  bool cross_correlation = true;  // PyTorch's conv2d (no kernel flip): CUDNN_CROSS_CORRELATION
  MathMode math = MathMode::fp32;
};

/// Validates g (UsageError) and returns the descriptor parameters; y's P, Q are g.P(), g.Q()
/// (cuDNN's cudnnGetConvolution2dForwardOutputDim must agree; cuda/conv.cpp checks it).
ConvDescriptorParams conv_descriptor_params(const Conv2dGeometry& g, MathMode math);

/// One entry of cuDNN's ranked list (cudnnConvolution*AlgoPerf_t), in plain fields.
struct AlgoCandidate {
  int algo = 0;
  int status = 0;  // cudnnStatus_t; 0 = the algorithm can run this shape
  /// max(perf.memory, cudnnGetConvolution*WorkspaceSize) for the algorithm: cuda/conv.cpp asks
  /// both, since a ranked entry's memory field alone has been seen to understate it.
  std::size_t workspace_bytes = 0;
  bool deterministic = false;  // CUDNN_DETERMINISTIC
  CandidateMath math = CandidateMath::fma;
};

struct AlgoChoice {
  ConvPass pass = ConvPass::forward;
  int algo = 0;
  std::size_t workspace_bytes = 0;
  bool deterministic = false;
  CandidateMath math = CandidateMath::fma;  // the descriptor's math type when it runs (tf32 only)
  std::string describe() const;  // "forward algo 1 (deterministic, 1.2 MiB workspace)"
};

/// The first candidate (cuDNN's order) that ran (status 0), fits in workspace_limit, is
/// deterministic when policy says so, and whose math type math_allowed() admits. None: throws
/// DeviceError naming the pass, the shape and why each candidate was refused.
/// Whether cuDNN's algorithm `algo` (the cudnnConvolution*Algo_t value) of `pass` forms each
/// output as a plain sum of products (cuda/conv.cpp static_asserts the enum values used here).
bool transform_free(ConvPass pass, int algo);

AlgoChoice choose_algorithm(ConvPass pass, std::span<const AlgoCandidate> ranked, AlgoPolicy policy,
                            MathMode math, std::size_t workspace_limit, const std::string& shape);

/// Choices per (pass, geometry, math, policy). The backend asks cuDNN once per key.
class AlgoCache {
 public:
  using Key = std::tuple<int, int, int, int, int, int, int, int, int, int, int, int, int>;
  static Key key(ConvPass pass, const Conv2dGeometry& g, MathMode math, AlgoPolicy policy);
  const AlgoChoice* find(const Key& k) const;
  const AlgoChoice& insert(const Key& k, AlgoChoice choice);
  std::size_t size() const { return choices_.size(); }
  /// Largest workspace of any cached choice: the context's workspace is grown to it once.
  std::size_t max_workspace_bytes() const;
  /// One line per choice, for logs and the crosscheck report.
  std::vector<std::string> describe() const;

 private:
  std::map<Key, AlgoChoice> choices_;
};

}  // namespace wdlab::cuda

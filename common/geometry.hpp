#pragma once
// One geometry struct per op, shared by the reference, the CUDA backend and the tests (CUTLASS's
// Conv2dProblemSize). Dimension legend for all of wdlab:
//   N batch; C input channels, K output channels; H, W input height/width; P, Q output
//   height/width; R, S kernel height/width. Activations are NCHW, conv weights [K, C, R, S],
//   dense weights [out, in] (PyTorch's layouts).
#include <cstdint>
#include <string>

namespace wdlab {

struct Conv2dGeometry {
  int N = 1, C = 1, H = 1, W = 1;  // input
  int K = 1, R = 3, S = 3;         // filters
  int pad = 1, stride = 1;         // symmetric zero padding, equal strides
  int P() const { return (H + 2 * pad - R) / stride + 1; }
  int Q() const { return (W + 2 * pad - S) / stride + 1; }
  std::int64_t input_size() const { return std::int64_t(N) * C * H * W; }
  std::int64_t output_size() const { return std::int64_t(N) * K * P() * Q(); }
  std::int64_t filter_size() const { return std::int64_t(K) * C * R * S; }
  int patch_size() const { return C * R * S; }  // rows of a KFC patch vector (without bias)
  int locations() const { return P() * Q(); }   // T of KFC (MATH.md §9.5)
  std::string describe() const;
  /// Throws UsageError naming the bad field (non-positive sizes, kernel larger than padded input).
  void validate() const;
};

struct Pool2dGeometry {
  int N = 1, C = 1, H = 2, W = 2;
  int window = 2, stride = 2;  // max-pooling, no padding
  int P() const { return (H - window) / stride + 1; }
  int Q() const { return (W - window) / stride + 1; }
  std::string describe() const;
  void validate() const;
};

struct DenseGeometry {
  int N = 1, in = 1, out = 1;
  std::string describe() const;
  void validate() const;
};

}  // namespace wdlab

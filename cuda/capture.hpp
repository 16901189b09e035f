#pragma once
// What cuda::Capturer::capture (cuda/capturer.cpp) brings back to the host for the
// crosscheck: every per-layer buffer of one pass, downloaded as the device holds it. Plain C++
// (no CUDA header), so the host-side conversion into crosscheck tensors
// (apps/crosscheck/cuda_capture.hpp) is built and unit-tested without a GPU.
// Device orders, which are also the crosscheck's (apps/crosscheck/tensors.hpp):
//   activations and cotangents: NCHW, example n at [n·C·H·W, (n+1)·C·H·W) (dense: C = features),
//   parameters and gradients: PyTorch order ([K, C, R, S] conv, [out, in] dense, [C] vectors),
//   BN batch statistics: [C] in double (the kernels reduce in double), the variance biased (÷ m).
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <vector>

namespace wdlab::cuda {

/// Which pass a capture runs.
///   train: forward with batch statistics, backward (input gradient included), one update of
///          the running statistics, then the BN layers once more in eval mode with them.
///   eval:  forward with the running statistics and the loss only (no backward: the backend has
///          no eval-mode BN backward, and no optimizer needs one).
enum class CapturePass { train, eval };

struct CaptureRequest {
  std::span<const float> images;          // N·C·H·W, NCHW
  std::span<const std::int32_t> labels;   // N, used by the softmax cross-entropy
  int n = 0;
  /// Empty: the backward starts from the softmax cross-entropy of the last layer's output with
  /// `labels`. Otherwise ∂L/∂(last layer's output), NCHW, and no loss is computed.
  std::span<const float> cotangent;
  CapturePass pass = CapturePass::train;
};

/// One Kronecker block (a dense or conv layer) as Capturer::capture_kfac downloads it: the
/// factor estimates of one statistics pass taken as the factors (no moving average), their
/// π-split damped inverses, and the preconditioned gradient U = S̃⁻¹ [dW db] Ã⁻¹ / T.
/// Matrices are column-major as the device holds them (which is the reference's Eigen storage);
/// the update is in PyTorch order like the gradient.
struct KfacBlockCapture {
  int layer = 0;
  int w = -1, b = -1;  // entries of spec.params(); b = -1 without a bias
  int out = 0, in = 0, locations = 1;
  std::vector<float> A, S;          // a × a (a = in + 1 with a bias), out × out
  std::vector<float> A_inv, S_inv;  // (A + d_A I)⁻¹, (S + d_S I)⁻¹
  std::vector<float> update_w, update_b;
  double damping_a = 0, damping_s = 0;  // as used, after any raise
  int a_dim() const { return in + (b >= 0 ? 1 : 0); }
};

struct Capture {
  int n = 0;
  /// Per layer: the output of the requested pass (train: batch statistics).
  std::vector<std::vector<float>> out;
  /// Per layer: ∂L/∂output; empty where nothing flowed back (outputs unused downstream) or in
  /// the eval pass.
  std::vector<std::vector<float>> dout;
  /// ∂L/∂input (train pass).
  std::vector<float> dinput;
  /// Per entry of spec.params(): the gradient of a trainable tensor (train pass), empty for
  /// running statistics.
  std::vector<std::vector<float>> grads;
  /// Per layer, BN only (train pass): batch mean and biased variance.
  std::vector<std::vector<double>> bn_mean, bn_var;
  /// Per entry of spec.params(): running statistics after the pass's one update (train pass),
  /// empty for trainable tensors.
  std::vector<std::vector<float>> running;
  /// Per layer, BN only (train pass): the output in eval mode with the updated running statistics.
  std::vector<std::vector<float>> bn_eval_out;
  /// Mean softmax cross-entropy over the batch; NaN when a cotangent was given.
  double loss = std::numeric_limits<double>::quiet_NaN();
  /// The cuDNN algorithm choices of the pass (ConvCache::describe()).
  std::vector<std::string> algorithms;
  /// Per entry of spec.params(): the parameters the pass ran with (PyTorch order).
  std::vector<std::vector<float>> params;
  /// K-FAC quantities, filled by the caller from Capturer::capture_kfac (empty where not
  /// captured): network cases K-FAC-F (sampled targets) and K-FAC-G (Gaussian probes); layer
  /// cases the factors of the given cotangent.
  std::vector<KfacBlockCapture> kfac_fisher, kfac_gauss_newton, kfac_given;
};

/// A loss alone on given outputs (crosscheck loss cases), as the backend's loss kernels compute
/// it. Outputs, targets and the results are N×K example-major (n·K + k).
enum class CaptureLoss { softmax_cross_entropy, squared_error };
struct LossCapture {
  double loss = 0;            // mean over the batch
  std::vector<float> probs;   // softmax (cross-entropy only)
  std::vector<float> grad;    // ∂(mean loss)/∂outputs
};

}  // namespace wdlab::cuda

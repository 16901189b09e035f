#pragma once
// The crosscheck's entry points into the CUDA backend (apps/crosscheck/side_cuda.cpp): a friend
// of CudaBackend that runs the step's own code (backend_net.cpp, backend_kfac.cpp, CudaKfac) on
// one batch and downloads every buffer (cuda/capture.hpp), so the training class carries no
// crosscheck members. Slow by design (a synchronous copy per buffer); never on the training path.
#include <cstdint>
#include <span>
#include <vector>

#include "cuda/backend.hpp"
#include "cuda/capture.hpp"
#include "common/optim/optim_config.hpp"

namespace wdlab::cuda {

class Capturer {
 public:
  explicit Capturer(CudaBackend& backend) : be_(backend) {}

  /// One pass on a batch, every per-layer buffer downloaded (capturer.cpp). Parameters and
  /// optimizer state are not touched; a train pass leaves the running statistics updated once,
  /// as a train step would.
  Capture capture(const CaptureRequest& request);
  /// The K-FAC quantities of one batch at the current parameters under `kfac` (kind kfac_f or
  /// kfac_g, its damping, inverse method and seed; the backend's own optimizer is not used;
  /// capturer_kfac.cpp): the gradient of the request's pass, the statistics of a train-mode pass
  /// with the given cotangent or, without one, the cotangents sampled at RNG step 0, their damped
  /// inverses and the preconditioned gradient, per block in layer order. Parameters, running
  /// statistics and optimizer state are not touched. NumericError when a factor stays indefinite.
  std::vector<KfacBlockCapture> capture_kfac(const CaptureRequest& request, const OptimConfig& kfac, std::uint64_t seed);

 private:
  CudaBackend& be_;
};

/// A loss alone on host outputs through the backend's loss kernels (capturer.cpp): the
/// crosscheck's loss cases. `labels` for the cross-entropy, `targets` (N×K) for squared error.
LossCapture capture_loss(CaptureLoss kind, std::span<const float> outputs,
                         std::span<const std::int32_t> labels, std::span<const float> targets,
                         int classes, int n, int device = 0);

}  // namespace wdlab::cuda

// The CUDA side of the crosscheck (CUDA builds only; linked into the wdlab binary beside the
// backend's construction in apps/cuda_setup.cpp). make_side("cuda") calls make_cuda_side() after
// query_devices() found a usable GPU.
//
// Every backend runs from the case's parameters (the same float32-rounded numbers the
// reference side gets), float32 math (no TF32), cuDNN under the deterministic algorithm policy;
// the algorithms chosen are the notes of the lines.
//   layer and network cases: cuda::Capturer::capture (cuda/capturer.cpp), one train pass:
//     forward with batch statistics, the layer case's given cotangent or the softmax
//     cross-entropy, backward with the input gradient, one running-statistics update and the BN
//     layers in eval mode; apps/crosscheck/cuda_capture.cpp turns the downloaded buffers into
//     the reference side's tensors. Then Capturer::capture_kfac (cuda/capturer_kfac.cpp)
//     with crosscheck_optim's K-FAC settings and the case's seed, as the reference side's
//     append_curvature: network cases K-FAC-F (targets sampled from the same Philox stream at
//     RNG step 0) and K-FAC-G (the same probes): factors A and S of that one pass, their π-split
//     damped inverses (λ = 1e-2, cuSOLVER) and the preconditioned gradient S̃⁻¹[dW db]Ã⁻¹/T;
//     kfac_*_trace and kfac_gn_quadratic follow on the host from the downloaded factors. Layer
//     cases: the dense/conv factors of the given cotangent (kfc.A, kfc.S).
//   loss cases: the backend's loss kernels alone (cuda::capture_loss).
//   optimizer cases: the train::Backend interface: N train_step calls on the case's batches,
//     then state() (PyTorch-named parameters, running statistics and "optim." state,
//     interchangeable with the reference's) and measure(). K-FAC cases run with the reference
//     side's seed (same Fisher targets, same GN probes). An optimizer the backend refuses is
//     UNSUPPORTED with its reason.
//   exact mode: the integer layer cases on the float32 path, which is exact for them (every
//     sum below 2^24, xcheck::integer_sum_bound), with cuDNN under AlgoPolicy::exact
//     (deterministic, transform-free: FFT and Winograd round even integer data).
#include <fmt/format.h>

#include "apps/crosscheck/cuda_capture.hpp"
#include "apps/crosscheck/side.hpp"
#include "apps/crosscheck/tensor_names.hpp"
#include "apps/cuda_setup.hpp"
#include "cuda/backend.hpp"
#include "cuda/capturer.hpp"

namespace wdlab::app {

namespace {

using xcheck::Case;
using xcheck::CaseData;
using xcheck::Quantity;
using xcheck::Tensor;
using xcheck::Tensors;

class CudaSide final : public xcheck::Side {
 public:
  std::string name() const override { return "cuda"; }
  xcheck::Precision precision() const override { return xcheck::Precision::float32; }
  std::string unsupported(const Case& c) const override { return xcheck::cuda_side::unsupported(c); }
  std::string why_missing(const Case& c, const std::string& tensor, Quantity q) const override {
    return xcheck::cuda_side::why_missing(c, tensor, q);
  }
  Tensors run(const Case& c, const CaseData& d) override {
    switch (c.kind) {
      case xcheck::CaseKind::loss: return run_loss(c, d);
      case xcheck::CaseKind::layer:
      case xcheck::CaseKind::network: return run_capture(c, d);
      case xcheck::CaseKind::optimizer: return run_optimizer(c, d);
    }
    throw InternalError("cuda side: unknown case kind");
  }

 private:
  static std::unique_ptr<cuda::CudaBackend> backend(const Case& c, const CaseData& d) {
    std::vector<std::vector<float>> params;
    for (const auto& t : d.params) params.emplace_back(t.data.begin(), t.data.end());
    try {
      // The reference side's seed: the same sampled targets and probes.
      return std::make_unique<cuda::CudaBackend>(
          c.spec, params, c.optim, optim::decay_flags(c.spec, c.optim.reg), c.seed,
          cuda::BackendOptions{.math = cuda::MathMode::fp32,
                               .policy = c.input == xcheck::InputKind::small_integer ? cuda::AlgoPolicy::exact
                                                                                     : cuda::AlgoPolicy::deterministic});
    } catch (const UsageError& e) {
      throw xcheck::CaseUnsupported(e.what());
    }
  }


  Tensors run_capture(const Case& c, const CaseData& d) {
    auto be = backend(c, d);
    std::vector<float> images, cotangent;
    const auto req = xcheck::cuda_side::request(c, d, images, cotangent);
    cuda::Capturer capturer(*be);
    auto cap = capturer.capture(req);
    if (c.kind == xcheck::CaseKind::layer) {
      const LayerKind k = c.spec.layers.at(0).kind;
      if (k == LayerKind::dense || k == LayerKind::conv2d)
        cap.kfac_given = capturer.capture_kfac(req, xcheck::crosscheck_optim(optim::OptimizerKind::kfac_f), c.seed);
      return xcheck::cuda_side::layer_tensors(c, cap);
    }
    cap.kfac_fisher = capturer.capture_kfac(req, xcheck::crosscheck_optim(optim::OptimizerKind::kfac_f), c.seed);
    cap.kfac_gauss_newton = capturer.capture_kfac(req, xcheck::crosscheck_optim(optim::OptimizerKind::kfac_g), c.seed);
    return xcheck::cuda_side::network_tensors(c, cap, be->measure(train::HostBatch{}, xcheck::weight_metrics_request(c)));
  }

  Tensors run_loss(const Case& c, const CaseData& d) {
    const std::vector<float> z(d.outputs.begin(), d.outputs.end()), t(d.targets.begin(), d.targets.end());
    const auto kind = [&] {
      switch (c.loss) {
        case xcheck::LossKind::softmax_cross_entropy: return cuda::CaptureLoss::softmax_cross_entropy;
        case xcheck::LossKind::squared_error: return cuda::CaptureLoss::squared_error;
      }
      throw InternalError("cuda side: a LossKind without its capture");
    }();
    return xcheck::cuda_side::loss_tensors(
        c, cuda::capture_loss(kind, z, d.batches.at(0).labels, t, c.loss_classes, c.batch));
  }

  Tensors run_optimizer(const Case& c, const CaseData& d) {
    auto be = backend(c, d);
    std::vector<float> images;
    auto host = [&](const xcheck::Batch& b) {
      images.assign(b.x.begin(), b.x.end());
      return train::HostBatch{images, b.labels, c.batch};
    };
    Tensors out;
    if (be->wants_factor_init()) {
      be->accumulate_factor_init(host(d.batches[0]), 0);
      be->finish_factor_init();
    }
    be->record_weight_steps(train::WeightSteps::record);  // group rotation
    train::RotationMeter steps;
    for (int k = 0; k < c.steps; ++k) {
      const auto s = be->train_step(host(d.batches[k]), c.lr, k);
      out.push_back(Tensor{xcheck::names::step_loss(k), Quantity::loss, {1}, {s.loss}, ""});
      steps.add(s.weight_steps);
    }
    std::string algos;
    for (const auto& a : be->algorithm_choices()) algos += (algos.empty() ? "" : "; ") + a;
    for (auto& t : xcheck::tensors_after_steps(be->state(), d.params, c.steps)) {
      if (t.quantity == Quantity::params_after && t.name.find(".weight") != std::string::npos) t.note = algos;
      out.push_back(std::move(t));
    }
    // measure() errors (a device or library failure) propagate: `wdlab crosscheck` reports the
    // case as one FAIL line with the message and goes on with the next case.
    for (const auto& [name, v] : be->measure(host(d.batches[0]), xcheck::measure_request(c)))
      out.push_back(Tensor{xcheck::names::metric(name, ""), Quantity::metric, {1}, {v}, ""});
    for (const auto& [name, v] : be->measure(host(d.batches[0]), xcheck::measure_request_batch_bn(c)))
      out.push_back(Tensor{xcheck::names::metric(name, xcheck::of_batch_bn), Quantity::metric, {1}, {v}, ""});
    xcheck::append_rotation_metrics(out, *be, host(d.batches[0]), steps, c, xcheck::Precision::float32);
    return out;
  }
};

}  // namespace

std::unique_ptr<xcheck::Side> make_cuda_side() { return std::make_unique<CudaSide>(); }

}  // namespace wdlab::app

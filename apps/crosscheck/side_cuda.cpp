// The CUDA side of the crosscheck (CUDA builds only; linked into the wdlab binary beside the
// backend's construction in apps/cuda_setup.cpp). make_side("cuda") calls make_cuda_side() after
// query_devices() found a usable GPU.
//
// What it runs today: optimizer cases, through the backend's train::Backend interface: the
// case's parameters (the same float32-rounded numbers the reference side gets), N train_step
// calls on the case's batches, then state() (PyTorch-named parameters, running statistics and
// "optim." state, interchangeable with the reference's) and measure(). cuDNN runs with the
// deterministic algorithm policy; the algorithms chosen are printed as the notes of the lines.
// K-FAC cases run with the reference side's seed (same Fisher targets, same GN probes). A case
// the backend refuses is UNSUPPORTED with the backend's reason.
// Layer, loss and network cases need per-layer entry points the backend does not expose yet:
// UNSUPPORTED, never passed. To add them, return the tensors of side_reference.cpp, named by
// tensor_names.hpp, in the layouts of tensors.hpp, from the CaseData given.
#include <fmt/format.h>

#include "apps/crosscheck/side.hpp"
#include "apps/crosscheck/tensor_names.hpp"
#include "apps/cuda_setup.hpp"
#include "cuda/backend.hpp"

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
  std::string unsupported(const Case& c) const override {
    if (c.kind != xcheck::CaseKind::optimizer)
      return "the CUDA backend exposes no per-layer entry points to the crosscheck yet (optimizer cases run)";
    return "";
  }
  Tensors run(const Case& c, const CaseData& d) override {
    std::vector<std::vector<float>> params;
    for (const auto& t : d.params) params.emplace_back(t.data.begin(), t.data.end());
    std::unique_ptr<cuda::CudaBackend> be;
    try {
      cuda::OptimSettings settings = cuda_optim_settings(c.optim, c.spec);
      settings.kfac.seed = c.seed;  // the reference side's seed: the same sampled targets and probes
      be = std::make_unique<cuda::CudaBackend>(
          c.spec, params, settings,
          cuda::BackendOptions{.math = cuda::MathMode::fp32, .policy = cuda::AlgoPolicy::deterministic});
    } catch (const UsageError& e) {
      throw xcheck::CaseUnsupported(e.what());
    }
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
    for (int k = 0; k < c.steps; ++k) {
      const auto s = be->train_step(host(d.batches[k]), c.lr, k);
      out.push_back(Tensor{xcheck::names::step_loss(k), Quantity::loss, {1}, {s.loss}, ""});
    }
    std::string algos;
    for (const auto& a : be->algorithm_choices()) algos += (algos.empty() ? "" : "; ") + a;
    for (auto& t : xcheck::tensors_after_steps(be->state(), d.params)) {
      if (t.quantity == Quantity::params_after && t.name.find(".weight") != std::string::npos) t.note = algos;
      out.push_back(std::move(t));
    }
    try {
      for (const auto& [name, v] : be->measure(host(d.batches[0]), xcheck::measure_request(c)))
        out.push_back(Tensor{xcheck::names::metric(name, ""), Quantity::metric, {1}, {v}, ""});
    } catch (const Error&) {
      // No metrics from this backend yet: the reference's metric tensors show as MISSING.
    }
    return out;
  }
};

}  // namespace

std::unique_ptr<xcheck::Side> make_cuda_side() { return std::make_unique<CudaSide>(); }

}  // namespace wdlab::app

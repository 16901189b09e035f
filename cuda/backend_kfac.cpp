// CudaBackend's K-FAC step and statistics pass, in the reference backend's order
// (reference/backend.cpp): forward, loss, backward; no step on a non-finite loss; the K-FAC
// step (cuda/kfac.hpp); running statistics; then, when (k+1) mod T_cov = 0, the statistics of
// the updated network on the same batch with freshly sampled output cotangents (K-FAC-F:
// p − e_ŷ with ŷ ~ p(y|x); K-FAC-G: N(0, σ²I) probes; shared Philox, the reference's seed and
// step), folded into the factors. A factor estimate with a non-finite entry is rejected whole and
// the parameter step stands, as in the reference.
#include <fmt/format.h>

#include <cmath>
#include <optional>

#include "common/errors.hpp"
#include "cuda/backend.hpp"
#include "cuda/backend_activations.hpp"
#include "cuda/kernels/launch.hpp"
#include "cuda/kernels/loss.hpp"
#include "cuda/kfac.hpp"

namespace wdlab::cuda {

namespace {
constexpr std::uint64_t kFactorInitStep = std::uint64_t(1) << 40;  // the reference's RNG steps for the data pass
}  // namespace

train::StepStats CudaBackend::kfac_step(Activations& a, double lr, std::int64_t k) {
  forward(a, true);
  loss_and_gradient(a, true);
  backward(a);
  kernels::StepScalars h = read_scalars();
  train::StepStats s;
  s.loss = h.loss_sum / double(a.N);
  s.correct = std::int64_t(h.correct);
  auto reject = [&](std::string tensor, std::string layer) {
    s.finite = false;
    s.nonfinite_tensor = std::move(tensor);
    s.nonfinite_layer = std::move(layer);
    return s;
  };
  if (!std::isfinite(s.loss)) return reject("loss", "");
  // Under skip a failed step leaves no trace: a host copy of parameters, running statistics and
  // the whole K-FAC state (factors, inverses, momentum), as the reference keeps one.
  std::optional<io::SafetensorsFile> before;
  if (policy_ == train::NonfinitePolicy::skip) before = state();
  KfacFailure fail;
  begin_weight_steps();  // group rotation only: ‖g_t‖ before the step adds L2 in place
  const auto raises = kfac_->step(params_, grads_, lr, k, &fail);
  if (!fail.tensor.empty()) {
    if (before) load_state(*before);
    return reject(fail.tensor, fail.layer);
  }
  for (const auto& r : raises) s.events.push_back(damping_event(r));
  running_stats_update(a);
  parameter_stats();
  h = read_scalars();
  if (h.param_stats[2] != 0.0) {
    s.finite = false;
    name_nonfinite(s);  // "gradient" or "update" and the tensor, as the reference
    if (before) load_state(*before);
    return s;
  }
  if (kfac_->wants_factors(k)) {
    kfac_statistics(a, std::uint64_t(k));
    if (!kfac_->update_factors(k, &fail)) return reject(fail.tensor, fail.layer);
  }
  end_weight_steps(s);  // group rotation only
  return s;
}

void CudaBackend::kfac_statistics(Activations& a, std::uint64_t rng_step) {
  kfac_statistics(a, rng_step, *kfac_);
}

void CudaBackend::kfac_statistics(Activations& a, std::uint64_t rng_step, CudaKfac& kfac) {
  const cudaStream_t s = ctx_->stream();
  const std::size_t last = spec_.layers.size() - 1;
  const kernels::Index K = spec_.classes, N = a.N;
  const KfacConfig& cfg = kfac.settings();
  forward(a, true);
  // The cotangent of the summed surrogate loss at the logits (no 1/N: kfac_statistics).
  switch (kfac.statistics()) {
    case KfacStatistics::fisher:
      kernels::launch_device(s, N, kernels::FisherCotangent{a.out[last].data(), a.dout[last].data(), nullptr, K,
                                                            kfac.seed(), rng_step});
      break;
    case KfacStatistics::gauss_newton:
      kernels::launch_device(s, N * K, kernels::GaussianProbes{a.dout[last].data(),
                                                               std::sqrt(cfg.gn_probe_variance), kfac.seed(), rng_step});
      break;
  }
  backward(a);
  std::vector<CudaKfac::BlockInput> in;
  for (const KfacBlockLayout& b : kfac.blocks())
    in.push_back(CudaKfac::BlockInput{input_of(a, b.layer), a.dout[std::size_t(b.layer)].data()});
  kfac.estimate(in, a.N);
}

bool CudaBackend::wants_factor_init() const { return kfac_ && kfac_->wants_factor_init(); }

void CudaBackend::accumulate_factor_init(const train::HostBatch& batch, std::int64_t index) {
  if (!kfac_) throw InternalError("accumulate_factor_init: the optimizer is not K-FAC");
  Activations& a = activations(batch.n);
  upload(a, batch);
  kfac_init_batch(a, index);
}

void CudaBackend::kfac_init_batch(Activations& a, std::int64_t index) {
  kfac_statistics(a, kFactorInitStep + std::uint64_t(index));
  kfac_->accumulate_init();
}

void CudaBackend::finish_factor_init() {
  if (!kfac_) throw InternalError("finish_factor_init: the optimizer is not K-FAC");
  kfac_->finish_init();
}

}  // namespace wdlab::cuda

// CudaBackend::measure_summary and ::rescale_weights: the numbers behind the mechanism metrics
// (common/train/measure.hpp; common/train/measure.cpp names the rows) on the GPU, term for term as
// reference/backend_measure.cpp and reference/net/metrics.cpp; the rotation group's per-step
// records; and wn-conv's rescaling.
//
// The curvature groups run the backend's own forward (BN in evaluation mode) and backward (BN
// through its running statistics, BnPass::running; with curvature_bn batch the forward uses the
// probe batch's statistics, the backward BnPass::batch, and each example's cotangent is
// multiplied by its Philox sign s_n, kernels::SignColumns) with output cotangents set at the logits:
// column j of B_n for the exact passes (Gauss-Newton: e_j; Fisher: √p_j(e_j − p)), Philox probe
// vectors for jac_norm_est. Per layer l (weight layer, output o = W̄ā, cotangent g_j):
//   tr(A_l)      = Σ_t ‖ā_t‖² / (N·T)        (dense: input, +1 with a bias; conv: KFC patches)
//   tr(S_l)      = Σ_j Σ_t ‖g_{j,t}‖² / (N·T)
//   T·vec(W̄)ᵀ(A⊗S)vec(W̄) = T·⟨S, W̄AW̄ᵀ⟩ = T·⟨Σ_j G_jG_jᵀ, OOᵀ⟩ / (N·T)²
//                (W̄ A W̄ᵀ = Σ_t o_t o_tᵀ/(N·T): no A factor needed, only C×C Gram matrices)
//   u(j, n)      = Σ_l ⟨g_{j,l,n}, o_{l,n}⟩,  gn_norm = Σ_{j,n} u(j,n)² / N
//   jac_norm     = Σ_j ‖∂(e_jᵀ f)/∂x‖² / N
// Every sum is a deterministic two-level reduction (SegmentPartialDots + SumPartials) into its
// own slot of one device array, read back once per pass and combined on the host in a fixed
// order; the Gram matrices are cuBLAS sgemms (deterministic for a fixed configuration).
#include <cublas_v2.h>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>

#include "common/errors.hpp"
#include "cuda/backend.hpp"
#include "cuda/backend_activations.hpp"
#include "cuda/kernels/launch.hpp"
#include "cuda/kernels/measure.hpp"
#include "cuda/kernels/patches.hpp"
#include "common/train/rotation.hpp"
#include "cuda/kfac.hpp"
#include "cuda/reductions.hpp"

namespace wdlab::cuda {

using kernels::Index;
using kernels::launch_device;

namespace {

Index numel(const Shape& s, int N) { return Index(N) * s.C * s.H * s.W; }

/// Device doubles that a pass's reductions write, each into slots of its own, read back once.
class ResultSlots {
 public:
  Index take(Index n) {
    const Index at = used_;
    used_ += n;
    return at;
  }
  void allocate() { buf_ = DeviceBuffer<double>(std::size_t(std::max<Index>(used_, 1))); }
  double* at(Index slot) { return buf_.data() + slot; }
  std::vector<double> download(cudaStream_t s) const {
    std::vector<double> h(buf_.size());
    buf_.copy_to_host(h, s);
    return h;
  }

 private:
  Index used_ = 0;
  DeviceBuffer<double> buf_;
};

/// out[s] = scale·Σ_e a[s·len + e]·b[s·len + e] for s < segments (per-example norms when the
/// segments are examples, a flat dot product for one segment). `partial` holds
/// segments·⌈len/kReduceChunk⌉ doubles.
void segment_dots(cudaStream_t st, const float* a, const float* b, Index segments, Index len,
                  double scale, double* out, DeviceBuffer<double>& partial) {
  const Index chunks = kernels::chunk_count(len, kReduceChunk);
  WDLAB_CHECK(std::size_t(segments * chunks) <= partial.size(), "measure: reduction scratch too small");
  launch_device(st, segments * chunks, kernels::SegmentPartialDots{a, b, partial.data(), len, kReduceChunk});
  launch_device(st, segments, kernels::SumPartials{partial.data(), out, chunks, scale});
}

Index partials_for(Index segments, Index len) { return segments * kernels::chunk_count(len, kReduceChunk); }

/// Examples per chunk of the conv patch matrix (rows × T columns each), so that it stays under
/// 2²² floats (16 MB) whatever the probe size.
int patch_chunk_examples(Index rows, Index T, int N) {
  const Index per = rows * T;
  return int(std::clamp<Index>((Index(1) << 22) / std::max<Index>(per, 1), 1, N));
}

}  // namespace

struct CudaBackend::Curvature {
  struct Layer {
    int layer = 0;          // spec index
    std::string weight;     // the weight tensor's name
    double trace = 0;       // T·tr(A)·tr(S)
    double exact_trace = std::numeric_limits<double>::quiet_NaN();  // dense only
    double kfac_norm = 0;   // T·vec(W̄)ᵀ(A ⊗ S)vec(W̄)
  };
  std::vector<Layer> layers;
  double theta_norm = 0, jac_norm = 0;
};

CudaBackend::Curvature CudaBackend::output_pass(Activations& a, OutputMetric metric, InputJacobian jac_pass,
                                                KfacQuadratic gn_pass, const CurvatureBnPass& bn) {
  const bool batch = bn.mode == train::CurvatureBn::batch;
  const bool want_jac = jac_pass == InputJacobian::compute, want_gn = gn_pass == KfacQuadratic::compute;
  const cudaStream_t st = ctx_->stream();
  const int N = a.N;
  const Index K = spec_.classes;
  const std::size_t last = spec_.layers.size() - 1;
  std::vector<int> wl;  // weight layers, spec order
  for (int i = 0; i < int(spec_.layers.size()); ++i)
    if (spec_.layers[std::size_t(i)].has_weights()) wl.push_back(i);
  const std::size_t B = wl.size();

  // Slots: A side once, then per cotangent column j the per-example ‖g‖² and ⟨g, o⟩ of each layer.
  ResultSlots slots;
  std::vector<Index> a_sq(B), kn(B);        // dense: per-example ‖a_n‖²; gn: ⟨ΣGGᵀ, OOᵀ⟩
  std::vector<std::vector<Index>> a_chunks(B);  // conv: Σ‖patch‖² per chunk of examples
  const std::vector<std::vector<Index>> shape(static_cast<std::size_t>(K), std::vector<Index>(B));
  std::vector<std::vector<Index>> g_sq = shape, u = shape;
  std::vector<Index> jac(static_cast<std::size_t>(K));
  Index scratch = partials_for(1, numel(spec_.input, N)), gram_max = 0, cols_max = 0, patch_max = 0;
  for (std::size_t b = 0; b < B; ++b) {
    const Layer& l = spec_.layers[std::size_t(wl[b])];
    const Index outn = numel(l.out, N);
    scratch = std::max({scratch, partials_for(N, outn / N), partials_for(1, Index(l.out.C) * l.out.C)});
    gram_max = std::max<Index>(gram_max, Index(l.out.C) * l.out.C);
    if (l.kind == LayerKind::dense) {
      a_sq[b] = slots.take(N);
      scratch = std::max(scratch, partials_for(N, l.in.size()));
    } else {
      const Conv2dGeometry g = l.conv_geometry(N);
      const Index rows = g.patch_size() + (slots_[std::size_t(wl[b])].bias >= 0 ? 1 : 0);
      const int per = patch_chunk_examples(rows, g.locations(), N);
      for (int n0 = 0; n0 < N; n0 += per) a_chunks[b].push_back(slots.take(1));
      patch_max = std::max<Index>(patch_max, rows * g.locations() * per);
      scratch = std::max(scratch, partials_for(1, rows * g.locations() * per));
      cols_max = std::max(cols_max, outn);
    }
    if (want_gn) kn[b] = slots.take(1);
  }
  for (Index j = 0; j < K; ++j) {
    for (std::size_t b = 0; b < B; ++b) {
      g_sq[std::size_t(j)][b] = slots.take(N);
      u[std::size_t(j)][b] = slots.take(N);
    }
    if (want_jac) jac[std::size_t(j)] = slots.take(1);
  }
  slots.allocate();
  DeviceBuffer<double> partial(static_cast<std::size_t>(scratch));
  DeviceBuffer<float> patches(static_cast<std::size_t>(patch_max)), cols(want_gn ? std::size_t(cols_max) : 0);
  std::vector<DeviceBuffer<float>> gram_s(want_gn ? B : 0), gram_o(want_gn ? B : 0);
  if (want_jac) a.dinput = DeviceBuffer<float>(std::size_t(numel(spec_.input, N)));
  const float one = 1.0f, zero = 0.0f;

  // The A side (depends on the forward pass only).
  for (std::size_t b = 0; b < B; ++b) {
    const int i = wl[b];
    const Layer& l = spec_.layers[std::size_t(i)];
    const float* x = input_of(a, i);
    if (l.kind == LayerKind::dense) {
      segment_dots(st, x, x, N, l.in.size(), 1.0, slots.at(a_sq[b]), partial);
    } else {
      const Conv2dGeometry g = l.conv_geometry(N);
      const Index rows = g.patch_size() + (slots_[std::size_t(i)].bias >= 0 ? 1 : 0), T = g.locations();
      const int per = patch_chunk_examples(rows, T, N);
      const kernels::ConvShape shape{g.C, g.H, g.W, g.R, g.S, g.P(), g.Q(), g.pad, g.stride};
      for (std::size_t c = 0; c < a_chunks[b].size(); ++c) {
        const int n0 = int(c) * per, cnt = std::min(per, N - n0);
        const Index len = rows * T * cnt;
        launch_device(st, len, kernels::ConvPatches{x + Index(n0) * g.C * g.H * g.W, patches.data(), shape, rows});
        segment_dots(st, patches.data(), patches.data(), 1, len, 1.0, slots.at(a_chunks[b][c]), partial);
      }
    }
    if (want_gn) {  // O Oᵀ: columns o_t (C × N·T), C×C
      const Index C = l.out.C, NT = numel(l.out, N) / C;
      const float* o = a.out[std::size_t(i)].data();
      if (l.kind == LayerKind::conv2d) {
        launch_device(st, C * NT, kernels::CotangentColumns{o, cols.data(), C, NT / N});
        o = cols.data();
      }
      gram_o[b] = DeviceBuffer<float>(std::size_t(C * C));
      gram_s[b] = DeviceBuffer<float>(std::size_t(C * C));
      gram_s[b].fill_zero(st);
      WDLAB_CUBLAS_CHECK(cublasSgemm(ctx_->cublas(), CUBLAS_OP_N, CUBLAS_OP_T, int(C), int(C), int(NT), &one, o,
                                     int(C), o, int(C), &zero, gram_o[b].data(), int(C)));
    }
  }

  // K backward passes, one per column of B_n.
  float* cot = a.dout[last].data();
  for (Index j = 0; j < K; ++j) {
    switch (metric) {
      case OutputMetric::fisher: launch_device(st, N, kernels::FisherColumnCotangent{a.out[last].data(), cot, K, j}); break;
      case OutputMetric::gauss_newton: launch_device(st, Index(N) * K, kernels::OneHotCotangent{cot, K, j}); break;
    }
    if (batch) launch_device(st, N, kernels::SignColumns{cot, K, bn.seed, bn.step});
    backward(a, batch ? BnPass::batch : BnPass::running);
    if (want_jac) {
      WDLAB_CHECK(a.dinput_written, "measure: the input gradient was not written");
      segment_dots(st, a.dinput.data(), a.dinput.data(), 1, Index(a.dinput.size()), 1.0,
                   slots.at(jac[std::size_t(j)]), partial);
    }
    for (std::size_t b = 0; b < B; ++b) {
      const int i = wl[b];
      WDLAB_CHECK(a.dout_written[std::size_t(i)], "a weight layer's output does not reach the logits");
      const Layer& l = spec_.layers[std::size_t(i)];
      const Index outn = numel(l.out, N), C = l.out.C, NT = outn / C;
      const float* g = a.dout[std::size_t(i)].data();
      segment_dots(st, g, g, N, outn / N, 1.0, slots.at(g_sq[std::size_t(j)][b]), partial);
      segment_dots(st, g, a.out[std::size_t(i)].data(), N, outn / N, 1.0, slots.at(u[std::size_t(j)][b]), partial);
      if (want_gn) {  // Σ_j G_j G_jᵀ
        if (l.kind == LayerKind::conv2d) {
          launch_device(st, outn, kernels::CotangentColumns{g, cols.data(), C, NT / N});
          g = cols.data();
        }
        WDLAB_CUBLAS_CHECK(cublasSgemm(ctx_->cublas(), CUBLAS_OP_N, CUBLAS_OP_T, int(C), int(C), int(NT), &one, g,
                                       int(C), g, int(C), &one, gram_s[b].data(), int(C)));
      }
    }
  }
  if (want_gn)
    for (std::size_t b = 0; b < B; ++b)
      segment_dots(st, gram_s[b].data(), gram_o[b].data(), 1, Index(gram_s[b].size()), 1.0, slots.at(kn[b]), partial);

  const std::vector<double> h = slots.download(st);  // the pass's one read-back
  a.dinput = DeviceBuffer<float>();                    // steps do not need the input gradient
  Curvature out;
  std::vector<double> u_sum(static_cast<std::size_t>(K * N), 0.0);
  for (std::size_t b = 0; b < B; ++b) {
    const int i = wl[b];
    const Layer& l = spec_.layers[std::size_t(i)];
    const bool bias = slots_[std::size_t(i)].bias >= 0;
    const double T = l.kind == LayerKind::conv2d ? double(l.conv_geometry(N).locations()) : 1.0;
    const double NT = double(N) * T;
    Curvature::Layer c;
    c.layer = i;
    c.weight = info_[std::size_t(slots_[std::size_t(i)].weight)].name;
    double tr_a = 0, tr_s = 0, exact = 0;
    std::vector<double> g_n(static_cast<std::size_t>(N), 0.0);  // Σ_j ‖g_{j,n}‖²
    for (Index j = 0; j < K; ++j)
      for (int n = 0; n < N; ++n) {
        const double gs = h[std::size_t(g_sq[std::size_t(j)][b] + n)];
        g_n[std::size_t(n)] += gs;
        tr_s += gs;
        u_sum[std::size_t(j * N + n)] += h[std::size_t(u[std::size_t(j)][b] + n)];
      }
    tr_s /= NT;
    if (l.kind == LayerKind::dense) {
      for (int n = 0; n < N; ++n) {
        const double an = h[std::size_t(a_sq[b] + n)] + (bias ? 1.0 : 0.0);  // ‖ā_n‖²
        tr_a += an;
        exact += an * g_n[std::size_t(n)];
      }
      tr_a /= NT;
      c.exact_trace = exact / double(N);
    } else {
      for (const Index slot : a_chunks[b]) tr_a += h[std::size_t(slot)];
      tr_a /= NT;
    }
    c.trace = T * tr_a * tr_s;
    if (want_gn) c.kfac_norm = T * h[std::size_t(kn[b])] / (NT * NT);
    out.layers.push_back(std::move(c));
  }
  for (const double v : u_sum) out.theta_norm += v * v;
  out.theta_norm /= double(N);
  if (want_jac) {
    for (Index j = 0; j < K; ++j) out.jac_norm += h[std::size_t(jac[std::size_t(j)])];
    out.jac_norm /= double(N);
  }
  return out;
}

std::vector<double> CudaBackend::jacobian_estimates(Activations& a, const train::MeasureRequest& req) {
  WDLAB_CHECK(req.jac_probes > 0, "need at least one probe");
  const cudaStream_t st = ctx_->stream();
  const int N = a.N;
  const Index K = spec_.classes, n_in = numel(spec_.input, N);
  a.dinput = DeviceBuffer<float>(std::size_t(n_in));
  DeviceBuffer<double> partial(static_cast<std::size_t>(partials_for(1, n_in)));
  DeviceBuffer<double> est(static_cast<std::size_t>(req.jac_probes));
  const auto kind = req.probe_distribution == train::ProbeDistribution::rademacher ? kernels::ProbeKind::rademacher
                                                                                   : kernels::ProbeKind::gaussian;
  float* cot = a.dout[spec_.layers.size() - 1].data();
  for (int m = 0; m < req.jac_probes; ++m) {
    const std::uint64_t step = (req.rng_step << 32) + std::uint64_t(m);  // as jacobian_norm_estimates
    launch_device(st, Index(N) * K, kernels::JacobianProbe{cot, req.seed, step, kind});
    backward(a, BnPass::running);
    WDLAB_CHECK(a.dinput_written, "measure: the input gradient was not written");
    // E_v ‖J_xᵀ v‖² = ‖J_x‖²_F
    segment_dots(st, a.dinput.data(), a.dinput.data(), 1, n_in, 1.0 / double(N), est.data() + m, partial);
  }
  std::vector<double> h(est.size());
  est.copy_to_host(h, st);
  a.dinput = DeviceBuffer<float>();
  return h;
}

train::MeasureSummary CudaBackend::measure_summary(const train::HostBatch& probe, const train::MeasureRequest& req) {
  using train::MetricGroup;
  const train::MetricGroups& g = req.groups;
  const bool jac = g.has(MetricGroup::jacobian), gn = g.has(MetricGroup::gn), tr = g.has(MetricGroup::trace);
  const bool curvature = jac || gn || tr || g.has(MetricGroup::jacobian_est);
  if (curvature && probe.n < 1)
    throw UsageError("metrics", "the curvature metrics need a probe set of at least one example");
  train::MeasureSummary out;
  const auto norms = weight_norms();  // deterministic device reductions, weight tensors in order
  std::size_t w = 0;
  for (std::size_t i = 0; i < info_.size(); ++i) {
    if (info_[i].role != ParamRole::weight) continue;
    const train::TensorDecay decay = train::tensor_decay(optim_, decays_.at(i) != 0);
    out.weights.push_back(train::WeightSummary{norms.at(w).first, norms.at(w).second, decay,
                                               decay == train::TensorDecay::none ? 0.0 : optim_.reg.weight_decay,
                                               train::weight_scale_invariance(spec_, info_[i].layer)});
    ++w;
  }
  out.optimizer = optim::metric_forms(optim_);
  if (g.has(MetricGroup::damping) && kfac_) out.damping = kfac_->damping_summary(info_);
  if (!curvature) return out;
  Activations& a = activations(probe.n);
  upload(a, probe);
  // The K-FAC-block metrics take BN as req.curvature_bn says (batch: the probe batch's
  // statistics); jac_norm, gn_norm and jac_norm_est are per-example and take eval mode, as the
  // reference (common/train/measure.hpp).
  const bool batch = req.curvature_bn == train::CurvatureBn::batch;
  const CurvatureBnPass bn{req.curvature_bn, req.seed, req.rng_step};
  const auto jac_if = [](bool b) { return b ? InputJacobian::compute : InputJacobian::skip; };
  const auto gn_if = [](bool b) { return b ? KfacQuadratic::compute : KfacQuadratic::skip; };
  forward(a, batch);
  if (jac || gn || tr) {
    const Curvature gp = output_pass(a, OutputMetric::gauss_newton, jac_if(jac && !batch), gn_if(gn), bn);
    const Curvature fp = tr ? output_pass(a, OutputMetric::fisher, InputJacobian::skip, KfacQuadratic::skip, bn)
                            : Curvature{};
    Curvature ep;
    if (batch) {
      forward(a, false);
      if (jac || gn) ep = output_pass(a, OutputMetric::gauss_newton, jac_if(jac), gn_if(gn), CurvatureBnPass{});  // eval
    }
    const Curvature& per_example = batch ? ep : gp;
    if (jac) out.jac_norm = per_example.jac_norm;
    if (gn) {
      double total = 0;
      for (const auto& c : gp.layers) total += c.kfac_norm;
      out.kfac_gn_norm = total;
      out.gn_norm = per_example.theta_norm;
    }
    if (tr)
      for (std::size_t b = 0; b < gp.layers.size(); ++b) {
        train::TraceSummary t{gp.layers[b].weight, gp.layers[b].trace, fp.layers[b].trace, std::nullopt, std::nullopt};
        if (std::isfinite(gp.layers[b].exact_trace)) {
          t.gn_exact = gp.layers[b].exact_trace;
          t.fisher_exact = fp.layers[b].exact_trace;
        }
        out.traces.push_back(std::move(t));
      }
  }
  if (g.has(MetricGroup::jacobian_est)) {
    if (batch && !(jac || gn || tr)) forward(a, false);  // eval mode (the passes above end in it)
    const auto est = jacobian_estimates(a, req);
    double mean = 0;
    for (const double e : est) mean += e / double(est.size());
    out.jac_norm_est = mean;
  }
  return out;
}

void CudaBackend::begin_weight_steps() {
  if (weight_steps_ != train::WeightSteps::record) return;
  const cudaStream_t st = ctx_->stream();
  std::vector<std::size_t> weights;
  Index longest = 1;
  for (std::size_t i = 0; i < info_.size(); ++i)
    if (info_[i].role == ParamRole::weight) {
      weights.push_back(i);
      longest = std::max(longest, Index(params_[i].size()));
    }
  if (step_theta_.size() != weights.size()) {
    step_theta_.clear();
    for (const std::size_t i : weights) step_theta_.emplace_back(params_[i].size());
    step_sums_ = DeviceBuffer<double>(4 * weights.size());
    step_partial_ = DeviceBuffer<double>(static_cast<std::size_t>(partials_for(1, longest)));
  }
  for (std::size_t w = 0; w < weights.size(); ++w) {
    const std::size_t i = weights[w];
    const Index n = Index(params_[i].size());
    WDLAB_CUDA_CHECK(cudaMemcpyAsync(step_theta_[w].data(), params_[i].data(), params_[i].bytes(),
                                     cudaMemcpyDeviceToDevice, st));
    segment_dots(st, params_[i].data(), params_[i].data(), 1, n, 1.0, step_sums_.data() + 4 * w + 1, step_partial_);
    segment_dots(st, grads_[i].data(), grads_[i].data(), 1, n, 1.0, step_sums_.data() + 4 * w + 3, step_partial_);
  }
}

void CudaBackend::end_weight_steps(train::StepStats& s) {
  if (weight_steps_ != train::WeightSteps::record || !s.finite) return;
  const cudaStream_t st = ctx_->stream();
  std::size_t w = 0;
  for (std::size_t i = 0; i < info_.size(); ++i) {
    if (info_[i].role != ParamRole::weight) continue;
    const Index n = Index(params_[i].size());
    segment_dots(st, step_theta_.at(w).data(), params_[i].data(), 1, n, 1.0, step_sums_.data() + 4 * w, step_partial_);
    segment_dots(st, params_[i].data(), params_[i].data(), 1, n, 1.0, step_sums_.data() + 4 * w + 2, step_partial_);
    ++w;
  }
  std::vector<double> h(step_sums_.size());
  step_sums_.copy_to_host(h, st);
  for (std::size_t k = 0; k < w; ++k)
    s.weight_steps.push_back(train::WeightStep{h[4 * k], h[4 * k + 1], h[4 * k + 2], h[4 * k + 3]});
}

void CudaBackend::rescale_weights(const train::NamedValues& targets) {
  // Everything is checked before any tensor changes (all or nothing, as the reference).
  struct Plan {
    int weight, bias, running_mean, running_var;
    float c;
  };
  std::vector<Plan> plans;
  std::map<std::string, double> norm;
  for (const auto& [name, value] : weight_norms()) norm[name] = value;
  for (const auto& [name, target] : targets) {
    int t = -1;
    for (std::size_t i = 0; i < info_.size(); ++i)
      if (info_[i].name == name && info_[i].role == ParamRole::weight) t = int(i);
    if (t < 0) throw UsageError("wn", fmt::format("\"{}\" is not a weight tensor of the network", name));
    if (!(std::isfinite(target) && target > 0))
      throw UsageError("wn", fmt::format("target norm of {} must be finite and > 0, got {}", name, target));
    const int layer = info_[std::size_t(t)].layer;
    std::vector<int> consumers;
    for (int j = layer + 1; j < int(spec_.layers.size()); ++j)
      for (const int in : spec_.layers[std::size_t(j)].inputs)
        if (in == layer) consumers.push_back(j);
    if (consumers.size() != 1 || spec_.layers[std::size_t(consumers[0])].kind != LayerKind::batchnorm)
      throw PreconditionError(fmt::format("wn: layer {} is not followed by BN alone, so rescaling {} would "
                                          "change the network's function",
                                          spec_.layers[std::size_t(layer)].name, name));
    if (!(norm.at(name) > 0)) throw UsageError("wn", fmt::format("{} is zero and cannot be rescaled", name));
    const LayerSlots& bn = slots_[std::size_t(consumers[0])];
    plans.push_back(Plan{t, slots_[std::size_t(layer)].bias, bn.running_mean, bn.running_var,
                         float(target / norm.at(name))});
    norm[name] = target;  // a repeated name rescales the rescaled tensor, as the reference does
  }
  const cudaStream_t st = ctx_->stream();
  auto scale = [&](int tensor, float c) {
    launch_device(st, Index(params_[std::size_t(tensor)].size()), kernels::Scale{params_[std::size_t(tensor)].data(), c});
  };
  for (const Plan& p : plans) {
    scale(p.weight, p.c);
    if (p.bias >= 0) scale(p.bias, p.c);
    scale(p.running_mean, p.c);
    scale(p.running_var, p.c * p.c);  // σ² of c·x is c²σ²
  }
  ctx_->synchronize();
}

}  // namespace wdlab::cuda

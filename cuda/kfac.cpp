// CudaKfac: factor statistics (syrk), damped inverses (cuSOLVER), the preconditioned step.
// Column-major everywhere (cuBLAS/cuSOLVER's and the reference's Eigen layout).
#include "cuda/kfac.hpp"

#include <cublas_v2.h>
#include <cusolverDn.h>
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>

#include "common/errors.hpp"
#include "cuda/check.hpp"
#include "cuda/kernels/kfac.hpp"
#include "cuda/kernels/launch.hpp"
#include "cuda/kernels/patches.hpp"
#include "cuda/reductions.hpp"
#include "cuda/state_layout.hpp"

namespace wdlab::cuda {

using kernels::Index;
using kernels::launch_device;

struct CudaKfac::Solver {
  cusolverDnHandle_t h = nullptr;
  explicit Solver(cudaStream_t s) {
    WDLAB_CUSOLVER_CHECK(cusolverDnCreate(&h));
    WDLAB_CUSOLVER_CHECK(cusolverDnSetStream(h, s));
  }
  ~Solver() { cusolverDnDestroy(h); }
  Solver(const Solver&) = delete;
  Solver& operator=(const Solver&) = delete;
};

struct CudaKfac::StagedState : CudaOptimizer::Staged {
  std::vector<std::array<std::vector<float>, 4>> mats;  // A, S, A_inv, S_inv per block
  std::vector<SplitDamping> damping;
  std::vector<std::vector<float>> v;  // PyTorch order
  bool initialized = false, ready = false;
};

train::StepEvent damping_event(const KfacDampingRaise& r) {
  return train::StepEvent{"damping_raised", r.layer,
                          fmt::format("factor {} not positive definite at iteration {}: damping {:.3g} raised to "
                                      "{:.3g} ({} raises)",
                                      r.factor, r.iteration, r.requested, r.used, r.raises)};
}

namespace {

void copy_device(float* dst, const float* src, std::size_t n, cudaStream_t s) {
  WDLAB_CUDA_CHECK(cudaMemcpyAsync(dst, src, n * sizeof(float), cudaMemcpyDeviceToDevice, s));
}

DeviceBuffer<float> identity(int n, cudaStream_t s) {
  std::vector<float> h(std::size_t(n) * std::size_t(n), 0.0f);
  for (int i = 0; i < n; ++i) h[std::size_t(i) * std::size_t(n) + std::size_t(i)] = 1.0f;
  DeviceBuffer<float> b(h.size());
  b.copy_from_host(h, s);
  return b;
}

template <class T>
T* grow(DeviceBuffer<T>& b, std::size_t n) {
  if (b.size() < n) b = DeviceBuffer<T>(n);
  return b.data();
}

}  // namespace

CudaKfac::CudaKfac(Context& ctx, const NetworkSpec& spec, const OptimConfig& optim, std::vector<char> decays,
                   std::uint64_t seed)
    : ctx_(ctx), spec_(spec), info_(spec.params()), optim_(optim), decays_(std::move(decays)), cfg_(optim.kfac),
      seed_(seed), statistics_(kfac_statistics_of(optim.kind)),  // InternalError unless a K-FAC kind
      blocks_(kfac_blocks(spec)) {
  optim::check_decay_flags(spec, decays_);
  const cudaStream_t s = ctx_.stream();
  solver_ = std::make_unique<Solver>(s);
  block_of_.assign(info_.size(), -1);
  v_.resize(info_.size());
  u_.resize(info_.size());
  for (std::size_t i = 0; i < info_.size(); ++i) {
    if (!info_[i].trainable()) continue;
    v_[i] = DeviceBuffer<float>(std::size_t(info_[i].numel()));
    v_[i].fill_zero(s);
  }
  std::size_t max_g = 1;
  for (int b = 0; b < int(blocks_.size()); ++b) {
    const KfacBlockLayout& blk = blocks_[std::size_t(b)];
    block_of_[std::size_t(blk.w)] = b;
    u_[std::size_t(blk.w)] = DeviceBuffer<float>(std::size_t(info_[std::size_t(blk.w)].numel()));
    if (blk.b >= 0) {
      block_of_[std::size_t(blk.b)] = b;
      u_[std::size_t(blk.b)] = DeviceBuffer<float>(std::size_t(blk.out));
    }
    BlockState st;
    st.A = identity(blk.a_dim(), s);
    st.S = identity(blk.out, s);
    st.A_inv = identity(blk.a_dim(), s);
    st.S_inv = identity(blk.out, s);
    st.est_A = DeviceBuffer<float>(std::size_t(blk.a_dim()) * std::size_t(blk.a_dim()));
    st.est_S = DeviceBuffer<float>(std::size_t(blk.out) * std::size_t(blk.out));
    blocks_state_.push_back(std::move(st));
    max_g = std::max(max_g, std::size_t(blk.out) * std::size_t(blk.a_dim()));
  }
  gbar_ = DeviceBuffer<float>(max_g);
  tmp_ = DeviceBuffer<float>(max_g);
  ubar_ = DeviceBuffer<float>(max_g);
  nu_ = DeviceBuffer<float>(1);
  info_dev_ = DeviceBuffer<int>(1);
  dstats_ = DeviceBuffer<double>(std::max<std::size_t>(12 * blocks_.size(), 12));
}

CudaKfac::~CudaKfac() = default;

float* CudaKfac::scratch(DeviceBuffer<float>& b, std::size_t n) { return grow(b, n); }

void CudaKfac::syrk(const float* x, int n, std::int64_t k, std::int64_t ld, float alpha, float* c) {
  const float zero = 0.0f;
  WDLAB_CUBLAS_CHECK(cublasSsyrk(ctx_.cublas(), CUBLAS_FILL_MODE_LOWER, CUBLAS_OP_N, n, int(k), &alpha, x,
                                 int(ld), &zero, c, n));
  launch_device(ctx_.stream(), Index(n) * n, kernels::SymmetrizeLower{c, n});
}

double CudaKfac::nonfinite_count(const float* x, std::int64_t n) {
  double* partial = grow(partial_, std::size_t(flat_partials_needed(n)));
  flat_stats(ctx_.stream(), x, n, dstats_.data(), kernels::Accumulate::overwrite, partial);
  std::vector<double> h(dstats_.size());
  dstats_.copy_to_host(h, ctx_.stream());
  return h[2];
}

void CudaKfac::estimate(const std::vector<BlockInput>& in, int N) {
  WDLAB_CHECK(in.size() == blocks_.size(), "one statistics input per K-FAC block");
  const cudaStream_t s = ctx_.stream();
  for (std::size_t b = 0; b < blocks_.size(); ++b) {
    const KfacBlockLayout& blk = blocks_[b];
    BlockState& st = blocks_state_[b];
    const Layer& l = spec_.layers[std::size_t(blk.layer)];
    const int a = blk.a_dim();
    if (l.kind == LayerKind::dense) {
      // Â = X̄X̄ᵀ/N, X̄ the in×N input with a row of ones for the bias (a 1×1 "patch").
      if (blk.b >= 0) {
        float* p = scratch(patches_, std::size_t(a) * std::size_t(N));
        launch_device(s, Index(a) * N,
                      kernels::ConvPatches{in[b].x, p, kernels::ConvShape{blk.in, 1, 1, 1, 1, 1, 1, 0, 1}, a});
        syrk(p, a, N, a, 1.0f / float(N), st.est_A.data());
      } else {
        syrk(in[b].x, a, N, a, 1.0f / float(N), st.est_A.data());
      }
      syrk(in[b].dy, blk.out, N, blk.out, 1.0f / float(N), st.est_S.data());
    } else {
      const Conv2dGeometry g = l.conv_geometry(N);
      const std::int64_t T = g.locations(), M = std::int64_t(N) * T;
      const float inv_m = 1.0f / float(M);
      float* p = scratch(patches_, std::size_t(a) * std::size_t(M));
      launch_device(s, Index(a) * M,
                    kernels::ConvPatches{in[b].x, p,
                                         kernels::ConvShape{g.C, g.H, g.W, g.R, g.S, g.P(), g.Q(), g.pad, g.stride},
                                         a});
      syrk(p, a, M, a, inv_m, st.est_A.data());
      float* d = scratch(columns_, std::size_t(blk.out) * std::size_t(M));
      launch_device(s, Index(blk.out) * M, kernels::CotangentColumns{in[b].dy, d, blk.out, T});
      syrk(d, blk.out, M, blk.out, inv_m, st.est_S.data());
    }
  }
}

bool CudaKfac::update_factors(std::int64_t k, KfacFailure* failure) {
  if (!wants_factors(k))
    throw InternalError(fmt::format("kfac: update_factors at iteration {}, but T_cov = {}", k, cfg_.t_cov));
  const cudaStream_t s = ctx_.stream();
  // All estimates are checked before any factor changes, as the reference does: every block's
  // non-finite counts in one read-back.
  std::size_t need = 1;
  for (const BlockState& st : blocks_state_)
    need = std::max({need, std::size_t(flat_partials_needed(Index(st.est_A.size()))),
                     std::size_t(flat_partials_needed(Index(st.est_S.size())))});
  double* partial = grow(partial_, need);
  for (std::size_t b = 0; b < blocks_.size(); ++b) {
    const BlockState& st = blocks_state_[b];
    flat_stats(s, st.est_A.data(), Index(st.est_A.size()), dstats_.data() + 12 * b, kernels::Accumulate::overwrite, partial);
    flat_stats(s, st.est_S.data(), Index(st.est_S.size()), dstats_.data() + 12 * b + 3, kernels::Accumulate::overwrite, partial);
  }
  std::vector<double> h(dstats_.size());
  dstats_.copy_to_host(h, s);
  for (std::size_t b = 0; b < blocks_.size(); ++b)
    for (const char which : {'A', 'S'})
      if (h[12 * b + (which == 'A' ? 2 : 5)] != 0) {
        *failure = KfacFailure{"kfac_factor", blocks_[b].name,
                               fmt::format("the K-FAC {} estimate of {} at iteration {} has non-finite entries",
                                           which, blocks_[b].name, k)};
        return false;
      }
  const float e = float(cfg_.cov_ema_decay), take = 1.0f - float(cfg_.cov_ema_decay);
  for (BlockState& st : blocks_state_) {
    launch_device(s, Index(st.A.size()), kernels::FactorCombine{st.A.data(), st.est_A.data(), e, take, nullptr});
    launch_device(s, Index(st.S.size()), kernels::FactorCombine{st.S.data(), st.est_S.data(), e, take, nullptr});
  }
  return true;
}

void CudaKfac::accumulate_init() {
  const cudaStream_t s = ctx_.stream();
  const float keep = init_batches_ == 0 ? 0.0f : 1.0f;
  for (BlockState& st : blocks_state_) {
    if (st.init_A.size() != st.A.size()) st.init_A = DeviceBuffer<float>(st.A.size());
    if (st.init_S.size() != st.S.size()) st.init_S = DeviceBuffer<float>(st.S.size());
    launch_device(s, Index(st.A.size()), kernels::FactorCombine{st.init_A.data(), st.est_A.data(), keep, 1.0f, nullptr});
    launch_device(s, Index(st.S.size()), kernels::FactorCombine{st.init_S.data(), st.est_S.data(), keep, 1.0f, nullptr});
  }
  ++init_batches_;
}

void CudaKfac::finish_init() {
  WDLAB_CHECK(init_batches_ > 0, "factor initialization saw no batch");
  const cudaStream_t s = ctx_.stream();
  const float take = 1.0f / float(init_batches_);
  for (BlockState& st : blocks_state_) {
    launch_device(s, Index(st.A.size()), kernels::FactorCombine{st.A.data(), st.init_A.data(), 0.0f, take, nullptr});
    launch_device(s, Index(st.S.size()), kernels::FactorCombine{st.S.data(), st.init_S.data(), 0.0f, take, nullptr});
    st.init_A = DeviceBuffer<float>();
    st.init_S = DeviceBuffer<float>();
  }
  init_batches_ = 0;
  initialized_ = true;
  inverses_ready_ = false;
}

bool CudaKfac::try_inverse(const DeviceBuffer<float>& F, int n, float d, DeviceBuffer<float>& out) {
  const cudaStream_t s = ctx_.stream();
  const std::size_t nn = std::size_t(n) * std::size_t(n);
  float* w = scratch(work_, nn);
  copy_device(w, F.data(), nn, s);
  int lwork = 0, info = 0;
  if (cfg_.inverse == InverseMethod::cholesky) {
    // L Lᵀ = F + dI; positive definite when potrf succeeds and min diag(L)² > ε·max diag(L)².
    launch_device(s, n, kernels::AddDiagonal{w, n, d});
    WDLAB_CUSOLVER_CHECK(cusolverDnSpotrf_bufferSize(solver_->h, CUBLAS_FILL_MODE_LOWER, n, w, n, &lwork));
    float* ws = scratch(solver_ws_, std::size_t(std::max(lwork, 1)));
    WDLAB_CUSOLVER_CHECK(cusolverDnSpotrf(solver_->h, CUBLAS_FILL_MODE_LOWER, n, w, n, ws, lwork, info_dev_.data()));
    launch_device(s, 1, kernels::DiagonalStats{w, n, dstats_.data()});
    info_dev_.copy_to_host(std::span<int>(&info, 1), s);
    std::vector<double> h(dstats_.size());
    dstats_.copy_to_host(h, s);
    if (info != 0 || !cholesky_pivots_ok(float(h[1]), float(h[2]))) return false;
    WDLAB_CUSOLVER_CHECK(cusolverDnSpotri_bufferSize(solver_->h, CUBLAS_FILL_MODE_LOWER, n, w, n, &lwork));
    ws = scratch(solver_ws_, std::size_t(std::max(lwork, 1)));
    WDLAB_CUSOLVER_CHECK(cusolverDnSpotri(solver_->h, CUBLAS_FILL_MODE_LOWER, n, w, n, ws, lwork, info_dev_.data()));
    launch_device(s, Index(n) * n, kernels::SymmetrizeLower{w, n});
    info_dev_.copy_to_host(std::span<int>(&info, 1), s);
    if (info != 0) return false;
  } else {
    // F = V diag(μ) Vᵀ; inverse V diag(1/max(μ + d, d)) Vᵀ.
    float* mu = scratch(eig_, std::size_t(n));
    WDLAB_CUSOLVER_CHECK(cusolverDnSsyevd_bufferSize(solver_->h, CUSOLVER_EIG_MODE_VECTOR, CUBLAS_FILL_MODE_LOWER,
                                                     n, w, n, mu, &lwork));
    float* ws = scratch(solver_ws_, std::size_t(std::max(lwork, 1)));
    WDLAB_CUSOLVER_CHECK(cusolverDnSsyevd(solver_->h, CUSOLVER_EIG_MODE_VECTOR, CUBLAS_FILL_MODE_LOWER, n, w, n,
                                          mu, ws, lwork, info_dev_.data()));
    info_dev_.copy_to_host(std::span<int>(&info, 1), s);
    if (info != 0) return false;
    std::vector<float> h(static_cast<std::size_t>(n));
    WDLAB_CUDA_CHECK(cudaMemcpyAsync(h.data(), mu, h.size() * sizeof(float), cudaMemcpyDeviceToHost, s));
    WDLAB_CUDA_CHECK(cudaStreamSynchronize(s));
    const auto inv = clipped_inverse_eigenvalues(h, d);
    if (!inv) return false;
    WDLAB_CUDA_CHECK(cudaMemcpyAsync(mu, inv->data(), inv->size() * sizeof(float), cudaMemcpyHostToDevice, s));
    float* vs = scratch(work2_, nn);
    copy_device(vs, w, nn, s);
    launch_device(s, Index(nn), kernels::ScaleColumns{vs, mu, n});
    float* r = scratch(tmp_, nn);
    const float one = 1.0f, zero = 0.0f;
    WDLAB_CUBLAS_CHECK(cublasSgemm(ctx_.cublas(), CUBLAS_OP_N, CUBLAS_OP_T, n, n, n, &one, vs, n, w, n, &zero, r, n));
    copy_device(w, r, nn, s);
    WDLAB_CUDA_CHECK(cudaStreamSynchronize(s));  // `inv` (host) must outlive the upload
  }
  if (nonfinite_count(w, std::int64_t(nn)) != 0) return false;
  copy_device(out.data(), w, nn, s);
  return true;
}

bool CudaKfac::damped_inverse(const DeviceBuffer<float>& F, int n, double trace, double requested,
                              DeviceBuffer<float>& out, double* used, int* raises) {
  *used = requested;
  *raises = 0;
  const double floor = optim::damping_floor<float>(trace, n);
  for (;;) {
    if (try_inverse(F, n, float(*used), out)) return true;
    if (*raises == cfg_.max_damping_raises) return false;
    *used = raised_damping(*used, floor);
    ++*raises;
  }
}

void CudaKfac::compute_inverses(std::int64_t k, std::vector<KfacDampingRaise>& raises, KfacFailure* failure) {
  const cudaStream_t s = ctx_.stream();
  // Every factor's non-finite count and trace in one read-back: per block 12 doubles,
  // flat stats of A and S (Σ, Σ², #non-finite), then diagonal stats of A and S (trace, pivots).
  std::size_t need = 1;
  for (const BlockState& st : blocks_state_)
    need = std::max({need, std::size_t(flat_partials_needed(Index(st.A.size()))),
                     std::size_t(flat_partials_needed(Index(st.S.size())))});
  double* partial = grow(partial_, need);
  for (std::size_t b = 0; b < blocks_.size(); ++b) {
    const BlockState& st = blocks_state_[b];
    double* o = dstats_.data() + 12 * b;
    flat_stats(s, st.A.data(), Index(st.A.size()), o, kernels::Accumulate::overwrite, partial);
    flat_stats(s, st.S.data(), Index(st.S.size()), o + 3, kernels::Accumulate::overwrite, partial);
    launch_device(s, 1, kernels::DiagonalStats{st.A.data(), blocks_[b].a_dim(), o + 6});
    launch_device(s, 1, kernels::DiagonalStats{st.S.data(), blocks_[b].out, o + 9});
  }
  std::vector<double> h(dstats_.size());
  dstats_.copy_to_host(h, s);
  for (std::size_t b = 0; b < blocks_.size(); ++b) {
    const KfacBlockLayout& blk = blocks_[b];
    BlockState& st = blocks_state_[b];
    for (const char which : {'A', 'S'})
      if (h[12 * b + (which == 'A' ? 2 : 5)] != 0) {
        *failure = KfacFailure{"kfac_factor", blk.name,
                               fmt::format("K-FAC factor {} of {} has non-finite entries", which, blk.name)};
        return;
      }
    const std::array<double, 2> trace{h[12 * b + 6], h[12 * b + 9]};
    st.damping = pi_split_damping(trace[0], blk.a_dim(), trace[1], blk.out, cfg_.damping, blk.locations);
    for (const char which : {'A', 'S'}) {
      const bool is_a = which == 'A';
      double used = 0;
      int r = 0;
      const double requested = is_a ? st.damping.a : st.damping.s;
      if (!damped_inverse(is_a ? st.A : st.S, is_a ? blk.a_dim() : blk.out, trace[is_a ? 0 : 1], requested,
                          is_a ? st.A_inv : st.S_inv, &used, &r)) {
        *failure = KfacFailure{"kfac_inverse", blk.name,
                               fmt::format("{} factor {}: the factor is not positive definite even with damping "
                                           "{:.3e} after {} raises",
                                           blk.name, which, used, r)};
        return;
      }
      if (r > 0) raises.push_back(KfacDampingRaise{k, blk.name, which, requested, used, r});
    }
  }
  inverses_ready_ = true;
}

void CudaKfac::precondition(const std::vector<DeviceBuffer<float>>& grads) {
  const cudaStream_t s = ctx_.stream();
  const float one = 1.0f, zero = 0.0f;
  for (std::size_t b = 0; b < blocks_.size(); ++b) {
    const KfacBlockLayout& blk = blocks_[b];
    const BlockState& st = blocks_state_[b];
    const int a = blk.a_dim(), o = blk.out;
    const Index n = Index(o) * a;
    launch_device(s, n, kernels::GatherBlockGradient{grads[std::size_t(blk.w)].data(),
                                                     blk.b >= 0 ? grads[std::size_t(blk.b)].data() : nullptr,
                                                     gbar_.data(), o, blk.in});
    WDLAB_CUBLAS_CHECK(cublasSgemm(ctx_.cublas(), CUBLAS_OP_N, CUBLAS_OP_N, o, a, o, &one, st.S_inv.data(), o,
                                   gbar_.data(), o, &zero, tmp_.data(), o));
    WDLAB_CUBLAS_CHECK(cublasSgemm(ctx_.cublas(), CUBLAS_OP_N, CUBLAS_OP_N, o, a, a, &one, tmp_.data(), o,
                                   st.A_inv.data(), a, &zero, ubar_.data(), o));
    launch_device(s, n, kernels::ScatterBlockUpdate{ubar_.data(), u_[std::size_t(blk.w)].data(),
                                                    blk.b >= 0 ? u_[std::size_t(blk.b)].data() : nullptr, o,
                                                    blk.in, float(blk.locations)});
  }
}

bool CudaKfac::precondition_estimates(const std::vector<DeviceBuffer<float>>& grads,
                                      std::vector<KfacDampingRaise>* raises, KfacFailure* failure) {
  // The statistics of one pass are the factors: the reference's crosscheck side inverts
  // kfac_statistics' A and S directly, with no moving average and no identity start.
  const cudaStream_t s = ctx_.stream();
  for (BlockState& st : blocks_state_) {
    copy_device(st.A.data(), st.est_A.data(), st.A.size(), s);
    copy_device(st.S.data(), st.est_S.data(), st.S.size(), s);
  }
  compute_inverses(0, *raises, failure);
  if (!failure->tensor.empty()) return false;
  precondition(grads);
  return true;
}

std::vector<float> CudaKfac::download_update(int tensor) const {
  const DeviceBuffer<float>& d = u_.at(std::size_t(tensor));
  WDLAB_CHECK(block_of_.at(std::size_t(tensor)) >= 0, "download_update: the tensor is in no K-FAC block");
  std::vector<float> h(d.size());
  d.copy_to_host(h, ctx_.stream());
  return h;
}

std::vector<KfacDampingRaise> CudaKfac::step(std::vector<DeviceBuffer<float>>& params,
                                             std::vector<DeviceBuffer<float>>& grads, double lr,
                                             std::int64_t k, KfacFailure* failure) {
  std::vector<KfacDampingRaise> raises;
  if (kfac_inverses_due(cfg_, k, inverses_ready_ ? InversesReady::yes : InversesReady::no)) {
    compute_inverses(k, raises, failure);
    if (!failure->tensor.empty()) return raises;
  }
  const cudaStream_t s = ctx_.stream();
  const float beta = float(optim_.reg.weight_decay);
  auto l2 = [&](std::size_t i) { return optim_.reg.kind == Regularization::l2 && decays_[i]; };
  auto wd = [&](std::size_t i) { return optim_.reg.kind == Regularization::wd && decays_[i]; };
  // 1. g ← g + βθ.
  for (std::size_t i = 0; i < params.size(); ++i)
    if (info_[i].trainable() && l2(i))
      launch_device(s, Index(params[i].size()), kernels::AddL2{grads[i].data(), params[i].data(), beta});
  // 2. U = S̃⁻¹ Ḡ Ã⁻¹ / T per block.
  precondition(grads);
  auto direction = [&](std::size_t i) -> const float* {
    return block_of_[i] >= 0 ? u_[i].data() : grads[i].data();
  };
  // 3. KL clip: ν from Σ⟨g, U⟩ on the device (no read-back).
  const bool clip = cfg_.kl_clip > 0 && lr > 0;
  if (clip) {
    constexpr Index chunk = 1024;
    Index total = 0;
    for (std::size_t i = 0; i < params.size(); ++i)
      if (info_[i].trainable()) total += (Index(params[i].size()) + chunk - 1) / chunk;
    double* partial = grow(dot_partial_, std::size_t(std::max<Index>(total, 1)));
    Index at = 0;
    for (std::size_t i = 0; i < params.size(); ++i) {
      if (!info_[i].trainable()) continue;
      const Index n = Index(params[i].size()), chunks = (n + chunk - 1) / chunk;
      launch_device(s, chunks, kernels::DotPartials{grads[i].data(), direction(i), partial + at, n, chunk});
      at += chunks;
    }
    launch_device(s, 1, kernels::KlClipScale{partial, total, cfg_.kl_clip, lr, nu_.data()});
  }
  // 4. v ← μv + νU; θ ← θ − η(v + βθ).
  for (std::size_t i = 0; i < params.size(); ++i) {
    if (!info_[i].trainable()) continue;
    launch_device(s, Index(params[i].size()),
                  kernels::KfacUpdate{params[i].data(), direction(i), v_[i].data(), clip ? nu_.data() : nullptr,
                                      nullptr, float(lr), float(cfg_.momentum), beta,
                                      wd(i) ? kernels::Decay::wd : kernels::Decay::none});
  }
  return raises;
}

std::vector<float> CudaKfac::download(int b, char which) const {
  const BlockState& st = blocks_state_.at(std::size_t(b));
  const DeviceBuffer<float>& d = which == 'A' ? st.A : which == 'S' ? st.S : which == 'a' ? st.A_inv : st.S_inv;
  std::vector<float> h(d.size());
  d.copy_to_host(h, ctx_.stream());
  return h;
}

void CudaKfac::write_state(io::SafetensorsFile& f) const {
  const std::vector<ParamInfo>& info = info_;
  for (std::size_t b = 0; b < blocks_.size(); ++b) {
    const KfacBlockLayout& blk = blocks_[b];
    const int a = blk.a_dim(), o = blk.out;
    f.tensors[kfac_state_name("A", blk.name)] = kfac_matrix_tensor(a, download(int(b), 'A'));
    f.tensors[kfac_state_name("S", blk.name)] = kfac_matrix_tensor(o, download(int(b), 'S'));
    f.tensors[kfac_state_name("A_inv", blk.name)] = kfac_matrix_tensor(a, download(int(b), 'a'));
    f.tensors[kfac_state_name("S_inv", blk.name)] = kfac_matrix_tensor(o, download(int(b), 's'));
    f.tensors[kfac_state_name("damping", blk.name)] = damping_state_tensor(blocks_state_[b].damping);
  }
  for (std::size_t i = 0; i < info.size(); ++i) {
    if (!info[i].trainable()) continue;
    std::vector<float> h(v_[i].size());
    v_[i].copy_to_host(h, ctx_.stream());
    f.tensors["optim.momentum." + info[i].name] = optimizer_state_tensor(info[i], h);
  }
  f.tensors[optim::kfac_initialized_name] = scalar_state_tensor(initialized_ ? 1.0f : 0.0f);
  f.tensors[optim::kfac_inverses_ready_name] = scalar_state_tensor(inverses_ready_ ? 1.0f : 0.0f);
}

std::shared_ptr<const CudaOptimizer::Staged> CudaKfac::stage_state(const io::SafetensorsFile& f,
                                                                   std::size_t* taken) const {
  const std::vector<ParamInfo>& info = info_;
  auto st = std::make_shared<StagedState>();
  for (const KfacBlockLayout& blk : blocks_) {
    const int a = blk.a_dim(), o = blk.out;
    std::array<std::vector<float>, 4> m;
    const char* what[4] = {"A", "S", "A_inv", "S_inv"};
    for (int j = 0; j < 4; ++j) {
      const std::string name = kfac_state_name(what[j], blk.name);
      m[std::size_t(j)] = kfac_matrix_values(j % 2 == 0 ? a : o, f.at(name), name);
    }
    st->mats.push_back(std::move(m));
    const std::string dn = kfac_state_name("damping", blk.name);
    st->damping.push_back(damping_state_values(f.at(dn), dn));
    *taken += 5;
  }
  st->v.resize(info.size());
  for (std::size_t i = 0; i < info.size(); ++i) {
    if (!info[i].trainable()) continue;
    const std::string name = "optim.momentum." + info[i].name;
    st->v[i] = optimizer_state_values(info[i], f.at(name), name);
    ++*taken;
  }
  st->initialized = flag_state_value(f.at(optim::kfac_initialized_name), optim::kfac_initialized_name);
  st->ready = flag_state_value(f.at(optim::kfac_inverses_ready_name), optim::kfac_inverses_ready_name);
  *taken += 2;
  return st;
}

void CudaKfac::commit_state(const Staged& staged) {
  const auto* ss = dynamic_cast<const StagedState*>(&staged);
  if (!ss) throw InternalError("CudaKfac::commit_state: state staged by another optimizer");
  const StagedState& s = *ss;
  const cudaStream_t st = ctx_.stream();
  for (std::size_t b = 0; b < blocks_.size(); ++b) {
    BlockState& bs = blocks_state_[b];
    bs.A.copy_from_host(s.mats[b][0], st);
    bs.S.copy_from_host(s.mats[b][1], st);
    bs.A_inv.copy_from_host(s.mats[b][2], st);
    bs.S_inv.copy_from_host(s.mats[b][3], st);
    bs.damping = s.damping[b];
  }
  for (std::size_t i = 0; i < v_.size(); ++i)
    if (info_[i].trainable()) v_[i].copy_from_host(s.v[i], st);
  initialized_ = s.initialized;
  inverses_ready_ = s.ready;
}

std::vector<train::DampingSummary> CudaKfac::damping_summary(const std::vector<ParamInfo>& info) const {
  const cudaStream_t s = ctx_.stream();
  std::vector<train::DampingSummary> out;
  auto spectrum = [&](const DeviceBuffer<float>& F, int n) {
    // Eigenvalues in double of the float factor, as the reference's damping_fraction.
    DeviceBuffer<double> m(static_cast<std::size_t>(n) * std::size_t(n)), w(static_cast<std::size_t>(n));
    DeviceBuffer<int> info_d(1);
    launch_device(s, Index(F.size()), kernels::ToDouble{F.data(), m.data()});
    int lwork = 0, inf = 0;
    WDLAB_CUSOLVER_CHECK(cusolverDnDsyevd_bufferSize(solver_->h, CUSOLVER_EIG_MODE_NOVECTOR, CUBLAS_FILL_MODE_LOWER,
                                                     n, m.data(), n, w.data(), &lwork));
    DeviceBuffer<double> ws(std::size_t(std::max(lwork, 1)));
    WDLAB_CUSOLVER_CHECK(cusolverDnDsyevd(solver_->h, CUSOLVER_EIG_MODE_NOVECTOR, CUBLAS_FILL_MODE_LOWER, n,
                                          m.data(), n, w.data(), ws.data(), lwork, info_d.data()));
    info_d.copy_to_host(std::span<int>(&inf, 1), s);
    if (inf != 0) throw NumericError(fmt::format("damping_frac: syevd failed (info {})", inf));
    std::vector<double> h(static_cast<std::size_t>(n));
    w.copy_to_host(h, s);
    return h;
  };
  for (std::size_t b = 0; b < blocks_.size(); ++b) {
    const KfacBlockLayout& blk = blocks_[b];
    const std::string& name = info.at(std::size_t(blk.w)).name;
    const auto ea = spectrum(blocks_state_[b].A, blk.a_dim());
    const auto es = spectrum(blocks_state_[b].S, blk.out);
    out.push_back(train::DampingSummary{name, damping_fraction(ea, es, blk.locations, cfg_.damping)});
  }
  return out;
}

}  // namespace wdlab::cuda

// The K-FAC kernel bodies (cuda/kernels/kfac.hpp) through the host launcher against the
// reference's Kfac<float>: factor estimates (syrk's lower triangle mirrored), the EMA and the
// data-pass mean, and a whole preconditioned step (L2 or WD, KL clip, momentum) emulated body by
// body on the reference's own state. Each case has a negative control that must fail.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "common/network_spec.hpp"
#include "cuda/kernels/host_launch.hpp"
#include "cuda/kernels/kfac.hpp"
#include "cuda/kernels/patches.hpp"
#include "kernel_test_util.hpp"
#include "reference/ops/conv2d.hpp"
#include "reference/optim/kfac.hpp"

using namespace wdlab;
using namespace wdlab::cuda::kernels;
using namespace wdlab::cuda::testing;

namespace {

/// The lower triangle of Σ_j a_j a_jᵀ·α (column-major rows × cols input), as cublasSsyrk with
/// CUBLAS_FILL_MODE_LOWER leaves it: the strict upper triangle is not written (here: zero).
std::vector<float> syrk_lower(const std::vector<float>& a, Index rows, Index cols, float alpha) {
  std::vector<float> c(std::size_t(rows * rows), 0.0f);
  for (Index col = 0; col < rows; ++col)
    for (Index r = col; r < rows; ++r) {
      double s = 0;
      for (Index j = 0; j < cols; ++j) s += double(a[std::size_t(j * rows + r)]) * double(a[std::size_t(j * rows + col)]);
      c[std::size_t(col * rows + r)] = float(s) * alpha;
    }
  return c;
}

NetworkSpec small_net() {
  SpecBuilder b("kfac", Shape{2, 5, 5}, 3);
  b.conv("features.0", 4, 3, 1, 1, Bias::on);
  b.batchnorm("features.1");
  b.relu();
  b.maxpool(2, 2);
  b.flatten();
  b.dense("classifier", 3, Bias::on);
  return b.finish();
}

ref::Mat<float> matf(Eigen::Index r, Eigen::Index c, std::uint64_t stream, double scale = 1.0) {
  return normal_mat(r, c, stream, scale).cast<float>();
}

}  // namespace

TEST_CASE("kernel K-FAC factor estimate: syrk lower triangle mirrored by SymmetrizeLower equals the reference") {
  const Conv2dGeometry g{.N = 2, .C = 2, .H = 5, .W = 4, .K = 3, .R = 3, .S = 3, .pad = 1, .stride = 1};
  const Index T = g.locations(), cols = Index(g.N) * T, rows = g.patch_size() + 1;
  const Mat<double> x = rounded(normal_mat(Index(g.C) * g.H * g.W, g.N, 50));
  const auto xf = flat_f(x);
  std::vector<float> a(std::size_t(rows * cols));
  launch_host(rows * cols, ConvPatches{xf.data(), a.data(), ConvShape{g.C, g.H, g.W, g.R, g.S, g.P(), g.Q(), g.pad, g.stride}, rows});
  const Mat<double> omega = ref::conv2d_kfc_input_factor(g, x, ref::Homogeneous::on);
  std::vector<float> c = syrk_lower(a, rows, cols, 1.0f / float(cols));
  CHECK_FALSE(compare_kernel("Omega, lower triangle only (control)", to_d(c), flat_d(omega)).pass);
  launch_host(rows * rows, SymmetrizeLower{c.data(), rows});
  WDLAB_EXPECT_PASS(compare_kernel("Omega, syrk lower + SymmetrizeLower", to_d(c), flat_d(omega)));
}

TEST_CASE("kernel K-FAC factor EMA and data-pass mean equal the reference Kfac update_factors and init_factors") {
  const NetworkSpec spec = small_net();
  const auto p = ref::init_params<float>(spec, 3, ref::Init::glorot_uniform);
  optim::KfacConfig cfg;
  cfg.t_cov = 1;
  cfg.cov_ema_decay = 0.9;
  ref::Kfac<float> opt(cfg, optim::RegConfig{}, spec, p, ref::CurvatureKind::fisher);
  std::vector<ref::FactorStats<float>> stats;
  for (int b = 0; b < opt.num_blocks(); ++b) {
    const auto v = opt.block(b);
    const ref::Mat<float> xa = matf(v.A.rows(), 7, 60 + std::uint64_t(b)), xs = matf(v.S.rows(), 7, 70 + std::uint64_t(b));
    stats.push_back(ref::FactorStats<float>{v.layer, xa * xa.transpose() / 7.0f, xs * xs.transpose() / 7.0f, v.locations});
  }
  std::vector<std::vector<float>> before;  // the device factors: identity at the start
  for (int b = 0; b < opt.num_blocks(); ++b) before.push_back(flat_f(opt.block(b).A));
  opt.update_factors(stats, 0);
  for (int b = 0; b < opt.num_blocks(); ++b) {
    std::vector<float> f = before[std::size_t(b)];
    const auto e = flat_f(stats[std::size_t(b)].A);
    const float keep = float(cfg.cov_ema_decay), take = 1.0f - float(cfg.cov_ema_decay);
    std::vector<float> rejected = f;
    const double flag = 1.0;
    launch_host(Index(f.size()), FactorCombine{rejected.data(), e.data(), keep, take, &flag});
    CHECK_FALSE(compare_kernel("EMA with the reject flag set (control)", to_d(rejected), flat_d(opt.block(b).A)).pass);
    launch_host(Index(f.size()), FactorCombine{f.data(), e.data(), keep, take, nullptr});
    WDLAB_EXPECT_PASS(compare_exact("A <- eps A + (1-eps) A_hat, block " + std::to_string(b), to_d(f), flat_d(opt.block(b).A)));
  }
  // Data pass: the mean of two batches' estimates, then A ← mean.
  ref::FactorAverage<float> avg;
  avg.add(stats);
  auto stats2 = stats;
  for (auto& s : stats2) s.A *= 3.0f;
  avg.add(stats2);
  opt.init_factors(avg.mean());
  std::vector<float> sum(stats[0].A.size()), f = flat_f(stats[0].A);
  const auto e1 = flat_f(stats[0].A), e2 = flat_f(stats2[0].A);
  launch_host(Index(sum.size()), FactorCombine{sum.data(), e1.data(), 0.0f, 1.0f, nullptr});
  launch_host(Index(sum.size()), FactorCombine{sum.data(), e2.data(), 1.0f, 1.0f, nullptr});
  launch_host(Index(f.size()), FactorCombine{f.data(), sum.data(), 0.0f, 0.5f, nullptr});
  WDLAB_EXPECT_PASS(compare_kernel("data-pass mean of two batches", to_d(f), flat_d(opt.block(0).A)));
  launch_host(Index(f.size()), FactorCombine{f.data(), sum.data(), 0.0f, 1.0f, nullptr});
  CHECK_FALSE(compare_kernel("data-pass sum not divided (control)", to_d(f), flat_d(opt.block(0).A)).pass);
}

namespace {

enum class EmulateL2 { yes, no };

/// One reference Kfac<float> step at k = 1 on loaded state (inverses in use, momentum) against
/// the bodies in the order CudaKfac::step launches them. Returns whether θ and v matched.
bool step_matches(optim::Regularization reg_kind, EmulateL2 emulate_l2) {
  const NetworkSpec spec = small_net();
  ref::ParamStore<float> p = ref::init_params<float>(spec, 4, ref::Init::glorot_uniform);
  optim::KfacConfig cfg;
  cfg.t_inv = 100;
  cfg.kl_clip = 1e-4;  // small enough that ν < 1: the clip is exercised
  cfg.momentum = 0.8;
  optim::RegConfig reg;
  reg.kind = reg_kind;
  reg.weight_decay = 0.05;
  ref::Kfac<float> opt(cfg, reg, spec, p, ref::CurvatureKind::gauss_newton);
  // State: arbitrary inverses (ready) and momentum.
  ref::NamedTensors<float> st = opt.state();
  std::uint64_t stream = 100;
  for (auto& [name, m] : st) {
    if (name.find("_inv.") != std::string::npos) {
      const ref::Mat<float> r = matf(m.rows(), m.cols(), ++stream, 0.3);
      m = r * r.transpose() + ref::Mat<float>::Identity(m.rows(), m.cols());
    } else if (name.rfind("optim.momentum.", 0) == 0) {
      m = matf(m.rows(), m.cols(), ++stream, 0.1);
    } else if (name == "optim.kfac.inverses_ready") {
      m(0, 0) = 1.0f;
    }
  }
  opt.load_state(st);
  ref::ParamStore<float> grads = p;
  for (std::size_t i = 0; i < grads.values.size(); ++i)
    grads.values[i] = matf(grads.values[i].rows(), grads.values[i].cols(), 300 + i, 0.5);
  const double lr = 0.1;
  // Device side, PyTorch order.
  const std::size_t n = p.info.size();
  std::vector<std::vector<float>> theta(n), g(n), v(n), u(n);
  for (std::size_t i = 0; i < n; ++i) {
    theta[i] = ref::to_pytorch_order(p.info[i], p.values[i]);
    g[i] = ref::to_pytorch_order(p.info[i], grads.values[i]);
    if (!p.info[i].trainable()) continue;
    for (const auto& [name, m] : st)
      if (name == "optim.momentum." + p.info[i].name) v[i] = ref::to_pytorch_order(p.info[i], m);
  }
  const float beta = float(reg.weight_decay);
  if (emulate_l2 == EmulateL2::yes)
    for (std::size_t i = 0; i < n; ++i)
      if (p.info[i].trainable() && reg_kind == optim::Regularization::l2 && opt.decays(int(i)))
        launch_host(Index(g[i].size()), AddL2{g[i].data(), theta[i].data(), beta});
  std::vector<int> in_block(n, 0);
  for (int b = 0; b < opt.num_blocks(); ++b) {
    const auto view = opt.block(b);
    const int w = p.slots[std::size_t(view.layer)].weight, bi = p.slots[std::size_t(view.layer)].bias;
    const Index out = p.values[std::size_t(w)].rows(), in = p.values[std::size_t(w)].cols();
    const Index a = in + (bi >= 0 ? 1 : 0);
    std::vector<float> gbar(std::size_t(out * a)), ubar(std::size_t(out * a));
    launch_host(out * a, GatherBlockGradient{g[std::size_t(w)].data(), bi >= 0 ? g[std::size_t(bi)].data() : nullptr,
                                             gbar.data(), out, in});
    // cuBLAS's two sgemms, here as the same float products Eigen forms.
    const ref::Mat<float> G = Eigen::Map<const ref::Mat<float>>(gbar.data(), out, a);
    const ref::Mat<float> U = (view.S_inv * G) * view.A_inv;
    u[std::size_t(w)].resize(g[std::size_t(w)].size());
    if (bi >= 0) u[std::size_t(bi)].resize(g[std::size_t(bi)].size());
    launch_host(out * a, ScatterBlockUpdate{U.data(), u[std::size_t(w)].data(),
                                            bi >= 0 ? u[std::size_t(bi)].data() : nullptr, out, in,
                                            float(view.locations)});
    in_block[std::size_t(w)] = 1;
    if (bi >= 0) in_block[std::size_t(bi)] = 1;
  }
  for (std::size_t i = 0; i < n; ++i)
    if (!in_block[i]) u[i] = g[i];
  constexpr Index chunk = 16;  // several chunks per tensor: the partials' order is exercised
  std::vector<double> partial;
  for (std::size_t i = 0; i < n; ++i) {
    if (!p.info[i].trainable()) continue;
    const Index m = Index(g[i].size()), chunks = (m + chunk - 1) / chunk;
    const std::size_t at = partial.size();
    partial.resize(at + std::size_t(chunks));
    launch_host(chunks, DotPartials{g[i].data(), u[i].data(), partial.data() + at, m, chunk});
  }
  float nu = 0;
  launch_host(1, KlClipScale{partial.data(), Index(partial.size()), cfg.kl_clip, lr, &nu});
  CHECK(nu < 1.0f);
  for (std::size_t i = 0; i < n; ++i) {
    if (!p.info[i].trainable()) continue;
    const Decay d = reg_kind == optim::Regularization::wd && opt.decays(int(i)) ? Decay::wd : Decay::none;
    launch_host(Index(theta[i].size()), KfacUpdate{theta[i].data(), u[i].data(), v[i].data(), &nu, nullptr,
                                                   float(lr), float(cfg.momentum), beta, d});
  }
  opt.step(p, grads, lr, 1);
  MESSAGE("KL clip nu = " << nu << ", reference " << opt.last_kl_scale());
  const bool nu_ok = double(nu) == doctest::Approx(opt.last_kl_scale()).epsilon(1e-5);
  const auto after = opt.state();
  bool all = nu_ok;
  for (std::size_t i = 0; i < n; ++i) {
    if (!p.info[i].trainable()) continue;
    const auto c = compare_kernel("theta " + p.info[i].name, to_d(theta[i]), to_d(ref::to_pytorch_order(p.info[i], p.values[i])));
    MESSAGE(c.line());
    all = all && c.pass;
    for (const auto& [name, m] : after)
      if (name == "optim.momentum." + p.info[i].name) {
        const auto cv = compare_kernel("v " + p.info[i].name, to_d(v[i]), to_d(ref::to_pytorch_order(p.info[i], m)));
        all = all && cv.pass;
      }
  }
  return all;
}

}  // namespace

TEST_CASE("kernel K-FAC step bodies reproduce the reference Kfac<float> step with L2, WD, KL clip and momentum") {
  CHECK(step_matches(optim::Regularization::l2, EmulateL2::yes));
  CHECK(step_matches(optim::Regularization::wd, EmulateL2::yes));
  CHECK(step_matches(optim::Regularization::none, EmulateL2::yes));
  // Negative control: L2 left out of the gradient before preconditioning.
  CHECK_FALSE(step_matches(optim::Regularization::l2, EmulateL2::no));
}

TEST_CASE("kernel K-FAC helpers: KL clip scale, diagonal statistics, scaled columns, AddDiagonal") {
  CHECK(kl_clip_scale(1e-2, 0.1, 4.0) == doctest::Approx(std::sqrt(1e-2 / (0.01 * 4.0))));
  CHECK(kl_clip_scale(1e-2, 0.1, 1e-6) == 1.0);  // inactive: ν would exceed 1
  CHECK(kl_clip_scale(1e-2, 0.1, -1.0) == 1.0);  // Σ⟨g, U⟩ ≤ 0: no clip, as the reference
  CHECK(kl_clip_scale(0.0, 0.1, 4.0) == 1.0);
  // DiagonalStats on a Cholesky factor: the trace of F and the pivots diag(L)².
  const ref::Mat<float> r = matf(5, 5, 400);
  const ref::Mat<float> F = r * r.transpose() + ref::Mat<float>::Identity(5, 5);
  Eigen::LLT<ref::Mat<float>> llt(F);
  const ref::Mat<float> L = llt.matrixLLT();
  const auto lf = flat_f(L), ff = flat_f(F);
  double out[3];
  launch_host(1, DiagonalStats{ff.data(), 5, out});
  CHECK(out[0] == doctest::Approx(double(F.trace())).epsilon(1e-6));
  launch_host(1, DiagonalStats{lf.data(), 5, out});
  const auto piv = L.diagonal().array().square();
  CHECK(float(out[1]) == piv.minCoeff());
  CHECK(float(out[2]) == piv.maxCoeff());
  // ScaleColumns: V diag(s).
  std::vector<float> v = ff;
  const std::vector<float> s{1, 2, 3, 4, 5};
  launch_host(25, ScaleColumns{v.data(), s.data(), 5});
  const ref::Mat<float> vs = F * Eigen::Map<const Eigen::VectorXf>(s.data(), 5).asDiagonal();
  WDLAB_EXPECT_PASS(compare_exact("V diag(s)", to_d(v), flat_d(vs)));
  CHECK_FALSE(compare_exact("diag(s) V (control)", to_d(v), flat_d(ref::Mat<float>(Eigen::Map<const Eigen::VectorXf>(s.data(), 5).asDiagonal() * F))).pass);
  std::vector<float> m = ff;
  launch_host(5, AddDiagonal{m.data(), 5, 0.5f});
  WDLAB_EXPECT_PASS(compare_exact("F + 0.5 I", to_d(m), flat_d(ref::Mat<float>(F + 0.5f * ref::Mat<float>::Identity(5, 5)))));
}

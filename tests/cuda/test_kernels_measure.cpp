// Kernel bodies of CudaBackend::measure and ::rescale_weights (cuda/kernels/measure.hpp) run on
// the CPU by the host launcher, against the reference (reference/net/metrics.cpp and the ops):
// output cotangents (Gauss-Newton one-hot, Fisher columns), the Jacobian probes' Philox draws
// through the reference's own estimator, eval-mode BN backward, segment dot products, and the
// wn-conv scaling through ref::rescale_weight. Each case has a negative control that must fail.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "common/network_spec.hpp"
#include "cuda/kernels/host_launch.hpp"
#include "cuda/kernels/measure.hpp"
#include "kernel_test_util.hpp"
#include "reference/net/metrics.hpp"
#include "reference/net/network.hpp"
#include "reference/net/params.hpp"
#include "reference/ops/conv2d.hpp"
#include "reference/ops/batchnorm.hpp"
#include "reference/ops/loss.hpp"

using namespace wdlab;
using namespace wdlab::cuda::kernels;
using namespace wdlab::cuda::testing;

TEST_CASE("kernel output cotangents: Gauss-Newton one-hot and Fisher columns match the reference's B_n") {
  const Index K = 7, N = 5;
  const Mat<float> z = rounded(normal_mat(K, N, 30, 2.5)).cast<float>();
  const Mat<float> p = ref::softmax_fprop<float>(z);
  const auto zf = flat_f(z);
  std::vector<float> v(static_cast<std::size_t>(K * N));
  for (Index j = 0; j < K; ++j) {
    Mat<double> gn = Mat<double>::Zero(K, N), fi(K, N);  // metrics.cpp output_pass, column j
    gn.row(j).setOnes();
    for (Index n = 0; n < N; ++n) {
      const double r = std::sqrt(double(p(j, n)));
      for (Index k = 0; k < K; ++k) fi(k, n) = -r * double(p(k, n)) + (k == j ? r : 0.0);
    }
    launch_host(N * K, OneHotCotangent{v.data(), K, j});
    WDLAB_EXPECT_PASS(compare_exact("gn column " + std::to_string(j), to_d(v), flat_d(gn)));
    launch_host(N, FisherColumnCotangent{zf.data(), v.data(), K, j});
    WDLAB_EXPECT_PASS(compare_kernel("fisher column " + std::to_string(j), to_d(v), flat_d(fi)));
    // Control: the neighbouring column.
    launch_host(N, FisherColumnCotangent{zf.data(), v.data(), K, (j + 1) % K});
    CHECK_FALSE(compare_kernel("fisher column, wrong j (control)", to_d(v), flat_d(fi)).pass);
  }
  // Σ_j B e_j (B e_j)ᵀ = diag(p) − ppᵀ for each example (the Fisher of softmax CE).
  Mat<double> H = Mat<double>::Zero(K, K);
  const Index n = 2;
  for (Index j = 0; j < K; ++j) {
    launch_host(N, FisherColumnCotangent{zf.data(), v.data(), K, j});
    Eigen::VectorXd b(K);
    for (Index k = 0; k < K; ++k) b(k) = double(v[static_cast<std::size_t>(n * K + k)]);
    H += b * b.transpose();
  }
  const Eigen::VectorXd pn = p.col(n).cast<double>();
  const Mat<double> H_ref = Mat<double>(pn.asDiagonal()) - pn * pn.transpose();
  WDLAB_EXPECT_PASS(compare_kernel("fisher B Bt = diag(p) - p pt", flat_d(H), flat_d(H_ref)));
}

TEST_CASE("kernel Jacobian probes give the reference estimator's numbers (Rademacher, Gaussian)") {
  // A linear network f = W x: J_x = W, so estimate m = (1/N) Σ_n ‖Wᵀ v_{m,n}‖², which depends on
  // every draw (signs included, W is not diagonal).
  const int K = 3, D = 4, N = 6, M = 3;
  SpecBuilder bld("linear", Shape{D, 1, 1}, K);
  bld.flatten();
  bld.dense("fc", K, Bias::off);
  const NetworkSpec spec = bld.finish();
  const auto p = ref::init_params<double>(spec, 7, ref::Init::glorot_uniform);
  const Mat<double> W = p.values[static_cast<std::size_t>(p.find("fc.weight"))];
  REQUIRE(W.rows() == K);
  const Mat<double> x = normal_mat(D, N, 31);
  for (const auto dist : {train::ProbeDistribution::rademacher, train::ProbeDistribution::gaussian}) {
    const std::uint64_t seed = 5, rng_step = 2;
    const auto ref_est = ref::jacobian_norm_estimates(spec, p, x, M, dist, seed, rng_step);
    auto ours = [&](std::uint64_t step_key, std::uint64_t s) {
      std::vector<double> est;
      std::vector<float> v(static_cast<std::size_t>(N * K));
      for (int m = 0; m < M; ++m) {
        launch_host(Index(N) * K, JacobianProbe{v.data(), s, (step_key << 32) + std::uint64_t(m),
                                                dist == train::ProbeDistribution::rademacher
                                                    ? ProbeKind::rademacher
                                                    : ProbeKind::gaussian});
        double e = 0;
        for (int n = 0; n < N; ++n) {
          Eigen::VectorXd vn(K);
          for (int k = 0; k < K; ++k) vn(k) = double(v[static_cast<std::size_t>(n * K + k)]);
          e += (W.transpose() * vn).squaredNorm();
        }
        est.push_back(e / N);
      }
      return est;
    };
    const std::string tag = dist == train::ProbeDistribution::rademacher ? "rademacher" : "gaussian";
    WDLAB_EXPECT_PASS(compare_kernel("jacobian probes " + tag, ours(rng_step, seed), ref_est));
    CHECK_FALSE(compare_kernel("jacobian probes, wrong step (control)", ours(rng_step + 1, seed), ref_est).pass);
    CHECK_FALSE(compare_kernel("jacobian probes, wrong seed (control)", ours(rng_step, seed + 1), ref_est).pass);
  }
}

TEST_CASE("kernel eval-mode BN backward matches batchnorm_bprop with running statistics") {
  const Index N = 4, C = 3, HW = 5;
  const double eps = 1e-3;
  const ref::BatchNormGeometry g{.N = int(N), .C = int(C), .HW = int(HW)};
  const Mat<float> x = rounded(normal_mat(C * HW, N, 32)).cast<float>();
  const Mat<float> dy = rounded(normal_mat(C * HW, N, 33)).cast<float>();
  const Vec<float> rm = rounded(normal_mat(C, 1, 34)).cast<float>();
  const Vec<float> rv = rounded(normal_mat(C, 1, 35, 0.2, 1.0)).cast<float>();
  const Vec<float> gamma = rounded(normal_mat(C, 1, 36, 0.3, 1.0)).cast<float>();
  const Vec<float> beta = rounded(normal_mat(C, 1, 37)).cast<float>();
  const auto dyf = flat_f(dy), rvf = flat_f(rv), gf = flat_f(gamma);
  for (const bool affine : {false, true}) {
    Mat<float> y, dx_ref;
    const auto ctx = ref::batchnorm_fprop_eval<float>(g, x, rm, rv, float(eps), affine ? &gamma : nullptr,
                                                      affine ? &beta : nullptr, y);
    ref::batchnorm_bprop<float>(g, ctx, dy, affine ? &gamma : nullptr, dx_ref, nullptr, nullptr);
    std::vector<float> dx(dyf.size(), 0.5f);
    launch_host(N * C * HW, BnEvalBackward{dyf.data(), rvf.data(), affine ? gf.data() : nullptr, dx.data(), C, HW,
                                           float(eps), Accumulate::overwrite});
    const std::string tag = affine ? " (affine)" : "";
    WDLAB_EXPECT_PASS(compare_kernel("bn eval dx" + tag, to_d(dx), flat_d(dx_ref)));
    // Accumulate adds onto what is there (fan-out).
    std::vector<double> twice = flat_d(dx_ref);
    for (auto& t : twice) t *= 2;
    launch_host(N * C * HW, BnEvalBackward{dyf.data(), rvf.data(), affine ? gf.data() : nullptr, dx.data(), C, HW,
                                           float(eps), Accumulate::add});
    WDLAB_EXPECT_PASS(compare_kernel("bn eval dx accumulated" + tag, to_d(dx), twice));
  }
  // Control: the train-mode gradient (batch statistics) is another quantity.
  Mat<float> y, dx_train;
  const auto tctx = ref::batchnorm_fprop_train<float>(g, x, float(eps), &gamma, &beta, y);
  ref::batchnorm_bprop<float>(g, tctx, dy, &gamma, dx_train, nullptr, nullptr);
  std::vector<float> dx(dyf.size());
  launch_host(N * C * HW, BnEvalBackward{dyf.data(), rvf.data(), gf.data(), dx.data(), C, HW, float(eps),
                                         Accumulate::overwrite});
  CHECK_FALSE(compare_kernel("bn eval dx vs train-mode dx (control)", to_d(dx), flat_d(dx_train)).pass);
}

TEST_CASE("kernel segment dot products: per-example norms and flat dots in double, non-finite kept") {
  const Index S = 6, len = 37;
  const Mat<double> a = rounded(normal_mat(len, S, 38)), b = rounded(normal_mat(len, S, 39));
  const auto af = flat_f(a), bf = flat_f(b);
  Eigen::VectorXd ref_dot(S), ref_sq(S);
  for (Index s = 0; s < S; ++s) {
    ref_dot(s) = a.col(s).dot(b.col(s));
    ref_sq(s) = a.col(s).squaredNorm();
  }
  for (const Index chunk : {Index(1), Index(5), Index(37), Index(1024)}) {
    const Index chunks = chunk_count(len, chunk);
    std::vector<double> partial(static_cast<std::size_t>(S * chunks)), out(static_cast<std::size_t>(S));
    launch_host(S * chunks, SegmentPartialDots{af.data(), bf.data(), partial.data(), len, chunk});
    launch_host(S, SumPartials{partial.data(), out.data(), chunks, 1.0});
    WDLAB_EXPECT_PASS(compare_kernel("segment dots chunk " + std::to_string(chunk), out, flat_d(ref_dot)));
    launch_host(S * chunks, SegmentPartialDots{af.data(), af.data(), partial.data(), len, chunk});
    launch_host(S, SumPartials{partial.data(), out.data(), chunks, 0.5});
    WDLAB_EXPECT_PASS(compare_kernel("segment squared norms, scaled, chunk " + std::to_string(chunk), out,
                                     flat_d(Eigen::VectorXd(0.5 * ref_sq))));
  }
  // One segment: the flat dot product of everything.
  {
    const Index n = S * len, chunks = chunk_count(n, 16);
    std::vector<double> partial(static_cast<std::size_t>(chunks)), out(1);
    launch_host(chunks, SegmentPartialDots{af.data(), bf.data(), partial.data(), n, 16});
    launch_host(1, SumPartials{partial.data(), out.data(), chunks, 1.0});
    WDLAB_EXPECT_PASS(compare_kernel("flat dot", out, {ref_dot.sum()}));
    // Control: a wrong segment length pairs the wrong entries.
    std::vector<double> wrong(static_cast<std::size_t>(S));
    std::vector<double> p2(static_cast<std::size_t>(S * chunk_count(len - 1, 8)));
    launch_host(S * chunk_count(len - 1, 8), SegmentPartialDots{af.data(), bf.data(), p2.data(), len - 1, 8});
    launch_host(S, SumPartials{p2.data(), wrong.data(), chunk_count(len - 1, 8), 1.0});
    CHECK_FALSE(compare_kernel("segment dots, wrong length (control)", wrong, flat_d(ref_dot)).pass);
  }
  // A NaN makes its segment's sum NaN (a metric of a broken network must not look finite); the
  // other segments are untouched.
  auto bad = af;
  bad[static_cast<std::size_t>(2 * len + 3)] = std::numeric_limits<float>::quiet_NaN();
  const Index chunks = chunk_count(len, 8);
  std::vector<double> partial(static_cast<std::size_t>(S * chunks)), out(static_cast<std::size_t>(S));
  launch_host(S * chunks, SegmentPartialDots{bad.data(), bad.data(), partial.data(), len, 8});
  launch_host(S, SumPartials{partial.data(), out.data(), chunks, 1.0});
  CHECK(std::isnan(out[2]));
  CHECK(out[1] == doctest::Approx(ref_sq(1)).epsilon(1e-12));
  CHECK(out[3] == doctest::Approx(ref_sq(3)).epsilon(1e-12));
}

TEST_CASE("kernel scaling reproduces ref::rescale_weight bit for bit (weight, bias, running mean, variance)") {
  SpecBuilder bld("convnet", Shape{2, 5, 5}, 3);
  bld.conv("features.0", 4, 3, 1, 1, Bias::on);
  bld.batchnorm("features.1");
  bld.relu();
  bld.flatten();
  bld.dense("classifier", 3, Bias::on);
  const NetworkSpec spec = bld.finish();
  auto p = ref::init_params<float>(spec, 9, ref::Init::glorot_uniform);
  const int w = p.find("features.0.weight"), b = p.find("features.0.bias");
  const int rm = p.find("features.1.running_mean"), rv = p.find("features.1.running_var");
  REQUIRE((w >= 0 && b >= 0 && rm >= 0 && rv >= 0));
  // Non-trivial running statistics and bias, so that every scaling shows.
  for (const int t : {b, rm, rv})
    for (Eigen::Index i = 0; i < p.values[static_cast<std::size_t>(t)].size(); ++i)
      p.values[static_cast<std::size_t>(t)].data()[i] = float(1.0 + 0.25 * double(i + t));
  const auto before = p;
  const double target = 2.75;
  ref::rescale_weight(spec, p, "features.0.weight", target);
  const float c = float(target / double(before.values[static_cast<std::size_t>(w)].cast<double>().norm()));
  auto scaled = [&](int t, float by) {
    std::vector<float> v = flat_f(before.values[static_cast<std::size_t>(t)]);
    launch_host(Index(v.size()), Scale{v.data(), by});
    return to_d(v);
  };
  WDLAB_EXPECT_PASS(compare_exact("rescaled weight", scaled(w, c), flat_d(p.values[static_cast<std::size_t>(w)])));
  WDLAB_EXPECT_PASS(compare_exact("rescaled bias", scaled(b, c), flat_d(p.values[static_cast<std::size_t>(b)])));
  WDLAB_EXPECT_PASS(compare_exact("rescaled running mean", scaled(rm, c), flat_d(p.values[static_cast<std::size_t>(rm)])));
  WDLAB_EXPECT_PASS(compare_exact("rescaled running var", scaled(rv, c * c), flat_d(p.values[static_cast<std::size_t>(rv)])));
  // Control: the variance scaled by c, not c², is wrong.
  CHECK_FALSE(compare_exact("running var by c (control)", scaled(rv, c), flat_d(p.values[static_cast<std::size_t>(rv)])).pass);
}

namespace {

/// NCHW data of one layer (the reference's (C·T)×N matrix) as the C × N·T matrix of columns
/// o_{n,t} (CotangentColumns' layout).
Mat<double> columns(const Mat<double>& m, Index C) {
  const Index T = m.rows() / C, N = m.cols();
  Mat<double> out(C, N * T);
  for (Index n = 0; n < N; ++n)
    for (Index c = 0; c < C; ++c)
      for (Index t = 0; t < T; ++t) out(c, n * T + t) = m(c * T + t, n);
  return out;
}

}  // namespace

TEST_CASE("measure's reformulation (per-example sums, Gram matrices of outputs and cotangents) equals the reference metrics") {
  // CudaBackend::output_pass computes tr(A), tr(S), the exact dense traces, θᵀGθ, E‖J‖² and
  // T·vec(W̄)ᵀ(A⊗S)vec(W̄) = T·⟨Σ_j G_jG_jᵀ, OOᵀ⟩/(N·T)² without forming A. This replays those
  // formulas in double on the reference's own eval-mode passes and checks them against
  // ref::output_pass, kfac_norm and kfac_trace (exact_double): the algebra the device code
  // implements, with the kernel bodies above checked separately.
  SpecBuilder bld("measurenet", Shape{3, 6, 6}, 4);
  bld.conv("features.0", 5, 3, 1, 1, Bias::on);
  bld.batchnorm("features.1");
  bld.relu();
  bld.maxpool(2, 2);
  bld.conv("features.4", 6, 3, 2, 1, Bias::off);
  bld.batchnorm("features.5");
  bld.relu();
  bld.global_avgpool();
  bld.flatten();
  bld.dense("classifier", 4, Bias::on);
  const NetworkSpec spec = bld.finish();
  auto p = ref::init_params<double>(spec, 4, ref::Init::glorot_uniform);
  for (std::size_t t = 0; t < p.info.size(); ++t)
    if (p.info[t].role == ParamRole::running_var) p.values[t].array() += 0.5;  // eval BN is not the identity
  const Index N = 5, K = spec.classes;
  const Mat<double> x = normal_mat(spec.input.size(), N, 50);
  for (const auto metric : {ref::OutputMetric::gauss_newton, ref::OutputMetric::fisher}) {
    const bool fisher = metric == ref::OutputMetric::fisher;
    const auto rp = ref::output_pass(spec, p, x, metric, ref::InputGrad::compute);
    const auto fw = ref::network_forward(spec, p, x, ref::BnMode::eval);
    const Mat<double> probs = ref::softmax_fprop<double>(fw.logits());
    std::vector<int> wl;
    for (int i = 0; i < int(spec.layers.size()); ++i)
      if (spec.layers[std::size_t(i)].has_weights()) wl.push_back(i);
    const std::size_t B = wl.size();
    std::vector<double> tr_a(B, 0), tr_s(B, 0), exact(B, 0), kn(B, 0), T(B, 1);
    std::vector<Eigen::VectorXd> a_n(B), g_n(B);
    std::vector<Mat<double>> gram_o(B), gram_s(B);
    for (std::size_t b = 0; b < B; ++b) {
      const Layer& l = spec.layers[std::size_t(wl[b])];
      const bool bias = p.slots[std::size_t(wl[b])].bias >= 0;
      const Mat<double>& in = fw.input_of(spec, wl[b]);
      if (l.kind == LayerKind::dense) {
        a_n[b] = in.colwise().squaredNorm().transpose().array() + (bias ? 1.0 : 0.0);
        tr_a[b] = a_n[b].sum() / double(N);
      } else {
        const Conv2dGeometry g = l.conv_geometry(int(N));
        T[b] = g.locations();
        tr_a[b] = ref::conv2d_patches(g, in, bias ? ref::Homogeneous::on : ref::Homogeneous::off).squaredNorm() /
                  (double(N) * T[b]);
      }
      const Mat<double> O = columns(fw.out[std::size_t(wl[b])], l.out.C);
      gram_o[b] = O * O.transpose();
      gram_s[b] = Mat<double>::Zero(l.out.C, l.out.C);
      g_n[b] = Eigen::VectorXd::Zero(N);
    }
    Mat<double> u = Mat<double>::Zero(K, N);
    double jac = 0;
    for (Index j = 0; j < K; ++j) {
      Mat<double> cot = Mat<double>::Zero(K, N);
      for (Index n = 0; n < N; ++n) {
        if (!fisher) {
          cot(j, n) = 1;
          continue;
        }
        const double r = std::sqrt(probs(j, n));
        cot.col(n) = -r * probs.col(n);
        cot(j, n) += r;
      }
      const auto bw = ref::network_backward(spec, p, fw, cot, ref::InputGrad::compute);
      jac += bw.d_input.squaredNorm();
      for (std::size_t b = 0; b < B; ++b) {
        const Mat<double>& g = bw.d_out[std::size_t(wl[b])];
        g_n[b] += g.colwise().squaredNorm().transpose();
        u.row(j) += g.cwiseProduct(fw.out[std::size_t(wl[b])]).colwise().sum();
        const Mat<double> G = columns(g, spec.layers[std::size_t(wl[b])].out.C);
        gram_s[b] += G * G.transpose();
      }
    }
    double kfac_total = 0;
    const std::string tag = fisher ? "fisher " : "gn ";
    for (std::size_t b = 0; b < B; ++b) {
      const double NT = double(N) * T[b];
      tr_s[b] = g_n[b].sum() / NT;
      kn[b] = T[b] * gram_s[b].cwiseProduct(gram_o[b]).sum() / (NT * NT);
      kfac_total += kn[b];
      const double trace = T[b] * tr_a[b] * tr_s[b];
      WDLAB_EXPECT_PASS(compare(tag + "trace " + rp.layers[b].weight, std::vector<double>{trace},
                                std::vector<double>{ref::kfac_trace(rp.layers[b].factors)}, tol::Kind::exact_double));
      if (spec.layers[std::size_t(wl[b])].kind == LayerKind::dense) {
        exact[b] = a_n[b].dot(g_n[b]) / double(N);
        WDLAB_EXPECT_PASS(compare(tag + "exact trace " + rp.layers[b].weight, std::vector<double>{exact[b]},
                                  std::vector<double>{rp.layers[b].exact_trace}, tol::Kind::exact_double));
      } else {
        // Control: normalizing a conv layer's Gram matrices by N instead of N·T is another number.
        CHECK_FALSE(compare("conv gram normalized by N (control)", std::vector<double>{kn[b] * T[b] * T[b]},
                            std::vector<double>{ref::kfac_norm(spec, p, {rp.layers[b]})}, tol::Kind::exact_double)
                        .pass);
      }
      WDLAB_EXPECT_PASS(compare(tag + "kfac norm " + rp.layers[b].weight, std::vector<double>{kn[b]},
                                std::vector<double>{ref::kfac_norm(spec, p, {rp.layers[b]})}, tol::Kind::exact_double));
    }
    WDLAB_EXPECT_PASS(compare(tag + "theta norm", std::vector<double>{u.squaredNorm() / double(N)},
                              std::vector<double>{rp.theta_norm}, tol::Kind::exact_double));
    WDLAB_EXPECT_PASS(compare(tag + "jac norm", std::vector<double>{jac / double(N)}, std::vector<double>{rp.jac_norm},
                              tol::Kind::exact_double));
    WDLAB_EXPECT_PASS(compare(tag + "kfac norm", std::vector<double>{kfac_total},
                              std::vector<double>{ref::kfac_norm(spec, p, rp.layers)}, tol::Kind::exact_double));
  }
  // Control: the same formulas on a train-mode forward (batch statistics) give other numbers.
  const auto rp = ref::output_pass(spec, p, x, ref::OutputMetric::gauss_newton, ref::InputGrad::skip);
  const auto fw_train = ref::network_forward(spec, p, x, ref::BnMode::train);
  const Mat<double> O = columns(fw_train.out.back(), K);
  const Mat<double> gram_o = O * O.transpose();  // dense: G_j = e_j rows, Σ_j G_jG_jᵀ = N·I
  const double kn_train = (Mat<double>::Identity(K, K) * double(N)).cwiseProduct(gram_o).sum() / (double(N) * N);
  CHECK_FALSE(compare("classifier kfac norm on train-mode BN (control)", std::vector<double>{kn_train},
                      std::vector<double>{ref::kfac_norm(spec, p, {rp.layers.back()})}, tol::Kind::exact_double)
                  .pass);
}

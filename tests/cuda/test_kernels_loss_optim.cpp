// Kernel bodies of the CUDA backend run on the CPU by the host launcher: softmax cross-entropy,
// squared error, the K-FAC output samplers (Fisher targets, Gauss-Newton probes), the CIFAR
// augmentation, SGD (heavy ball, Nesterov) and Adam with none/L2/WD, against the reference;
// Lion against the paper's rule written out here.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "common/data/augment.hpp"
#include "common/network_spec.hpp"
#include "cuda/kernels/augment.hpp"
#include "cuda/kernels/host_launch.hpp"
#include "cuda/kernels/loss.hpp"
#include "cuda/kernels/optim.hpp"
#include "kernel_test_util.hpp"
#include "reference/net/params.hpp"
#include "reference/ops/loss.hpp"
#include "reference/optim/optimizer.hpp"

using namespace wdlab;
using namespace wdlab::cuda::kernels;
using namespace wdlab::cuda::testing;

TEST_CASE("kernel softmax cross-entropy: loss, hits, probabilities, gradient") {
  const Index K = 10, N = 33;
  const Mat<double> z = rounded(normal_mat(K, N, 20, 3.0));
  Eigen::VectorXi labels(N);
  for (Index n = 0; n < N; ++n) labels(n) = int(rng::below(5, rng::Purpose::theory, 21, n, K));
  const auto ref_ce = ref::softmax_cross_entropy<double>(z, labels);
  const auto zf = flat_f(z);
  std::vector<std::int32_t> lab(labels.data(), labels.data() + N);
  std::vector<float> probs(static_cast<std::size_t>(K * N)), dz(static_cast<std::size_t>(K * N));
  std::vector<double> loss(static_cast<std::size_t>(N)), correct(static_cast<std::size_t>(N));
  launch_host(N, SoftmaxCrossEntropy{zf.data(), lab.data(), probs.data(), dz.data(), loss.data(),
                                     correct.data(), K, N});
  StepScalars totals;
  launch_host(1, LossTotals{loss.data(), correct.data(), &totals, N});
  WDLAB_EXPECT_PASS(compare_kernel("ce mean loss", {totals.loss_sum / double(N)}, {ref_ce.loss}));
  CHECK(totals.correct == double(ref_ce.correct));
  CHECK(totals.skip == 0u);
  WDLAB_EXPECT_PASS(compare_kernel("ce probs", to_d(probs), flat_d(ref_ce.probs)));
  WDLAB_EXPECT_PASS(compare_kernel("ce dlogits", to_d(dz), flat_d(ref_ce.dlogits)));
  // Negative control: shifted labels give another gradient.
  for (auto& l : lab) l = (l + 1) % int(K);
  launch_host(N, SoftmaxCrossEntropy{zf.data(), lab.data(), nullptr, dz.data(), loss.data(),
                                     correct.data(), K, N});
  CHECK_FALSE(compare_kernel("ce dlogits, shifted labels (control)", to_d(dz), flat_d(ref_ce.dlogits)).pass);
  // A non-finite logit sets the skip flag the optimizer kernels read.
  auto bad = zf;
  bad[3] = std::numeric_limits<float>::infinity();
  launch_host(N, SoftmaxCrossEntropy{bad.data(), lab.data(), nullptr, nullptr, loss.data(),
                                     correct.data(), K, N});
  launch_host(1, LossTotals{loss.data(), correct.data(), &totals, N});
  CHECK(totals.skip == 1u);
}

TEST_CASE("kernel squared error matches the reference") {
  const Index K = 4, N = 9;
  const Mat<double> f = rounded(normal_mat(K, N, 22)), t = rounded(normal_mat(K, N, 23));
  const auto r = ref::squared_error<double>(f, t);
  const auto ff = flat_f(f), tf = flat_f(t);
  std::vector<float> dout(ff.size());
  std::vector<double> loss(static_cast<std::size_t>(N));
  launch_host(N, SquaredError{ff.data(), tf.data(), dout.data(), loss.data(), K, N});
  StepScalars totals;
  launch_host(1, LossTotals{loss.data(), nullptr, &totals, N});
  WDLAB_EXPECT_PASS(compare_kernel("se mean loss", {totals.loss_sum / double(N)}, {r.loss}));
  WDLAB_EXPECT_PASS(compare_kernel("se dout", to_d(dout), flat_d(r.dout)));
  launch_host(N, SquaredError{tf.data(), ff.data(), dout.data(), loss.data(), K, N});
  CHECK_FALSE(compare_kernel("se dout, swapped (control)", to_d(dout), flat_d(r.dout)).pass);
}

TEST_CASE("kernel K-FAC samplers draw the reference's Fisher targets and Gauss-Newton probes") {
  const Index K = 10, N = 200;
  const std::uint64_t seed = 1234, step = 77;
  const Mat<float> z = normal_mat(K, N, 24, 2.0).cast<float>();
  const Mat<float> p = ref::softmax_fprop<float>(z);
  const Eigen::VectorXi y_ref = ref::sample_categorical_targets<float>(p, seed, step);
  Mat<float> v_ref = p;
  for (Index n = 0; n < N; ++n) v_ref(y_ref(n), n) -= 1.0f;
  const auto zf = flat_f(z);
  std::vector<float> v(zf.size());
  std::vector<std::int32_t> y(static_cast<std::size_t>(N));
  launch_host(N, FisherCotangent{zf.data(), v.data(), y.data(), K, seed, step});
  std::vector<double> yd(y.begin(), y.end()), yr(y_ref.data(), y_ref.data() + N);
  WDLAB_EXPECT_PASS(compare_exact("fisher targets", yd, yr));
  WDLAB_EXPECT_PASS(compare_kernel("fisher cotangent p - e_y", to_d(v), flat_d(v_ref)));
  launch_host(N, FisherCotangent{zf.data(), v.data(), y.data(), K, seed, step + 1});
  std::vector<double> other(y.begin(), y.end());
  CHECK_FALSE(compare_exact("fisher targets, next step (control)", other, yr).pass);

  const double variance = 2.0;
  const Mat<float> probes_ref = ref::gaussian_probes<float>(int(K), int(N), variance, seed, step);
  std::vector<float> probes(static_cast<std::size_t>(K * N));
  launch_host(K * N, GaussianProbes{probes.data(), std::sqrt(variance), seed, step});
  WDLAB_EXPECT_PASS(compare_exact("gn probes (bit for bit)", to_d(probes), flat_d(probes_ref)));
  launch_host(K * N, GaussianProbes{probes.data(), 1.0, seed, step});
  CHECK_FALSE(compare_exact("gn probes, variance 1 (control)", to_d(probes), flat_d(probes_ref)).pass);
}

TEST_CASE("kernel augmentation equals data::augment_image bit for bit") {
  const Index N = 6, C = 3, H = 8, W = 7, pad = 4;
  const std::uint64_t seed = 42, step = 9;
  std::vector<float> in(static_cast<std::size_t>(N * C * H * W)), fill{-1.5f, 0.25f, 3.0f};
  for (std::size_t i = 0; i < in.size(); ++i) in[i] = float(i % 97) - 40.0f;
  const std::vector<std::int64_t> ids{5, 0, 1234567, 3, 3, 99};  // batch slots → example ids
  for (const float* f : {static_cast<const float*>(nullptr), static_cast<const float*>(fill.data())}) {
    std::vector<float> expect(in.size()), got(in.size(), -7.0f);
    for (Index n = 0; n < N; ++n)
      data::augment_image(seed, step, std::uint64_t(ids[std::size_t(n)]), in.data() + n * C * H * W,
                          expect.data() + n * C * H * W, int(C), int(H), int(W), int(pad), f);
    launch_host(N * C * H * W, AugmentCropFlip{in.data(), got.data(), ids.data(), f, seed, step, C, H, W, pad});
    WDLAB_EXPECT_PASS(compare_exact(f ? "augment, fill" : "augment, zero fill", to_d(got), to_d(expect)));
    CHECK(got == expect);
  }
  std::vector<float> got(in.size());
  launch_host(N * C * H * W, AugmentCropFlip{in.data(), got.data(), ids.data(), nullptr, seed, step + 1, C, H, W, pad});
  std::vector<float> expect(in.size());
  for (Index n = 0; n < N; ++n)
    data::augment_image(seed, step, std::uint64_t(ids[std::size_t(n)]), in.data() + n * C * H * W,
                        expect.data() + n * C * H * W, int(C), int(H), int(W), int(pad), nullptr);
  CHECK_FALSE(compare_exact("augment, other step (control)", to_d(got), to_d(expect)).pass);
}

namespace {

NetworkSpec small_net() {
  SpecBuilder b("mlp", Shape{3, 2, 2}, 4);
  b.dense("fc0", 5, Bias::on);
  b.relu();
  b.dense("fc1", 4, Bias::off);
  return b.finish();
}

ref::ParamStore<float> random_like(const ref::ParamStore<float>& p, std::uint64_t stream) {
  ref::ParamStore<float> g = p.zeros_like();
  for (std::size_t i = 0; i < g.values.size(); ++i)
    if (g.info[i].trainable())
      g.values[i] = normal_mat(g.values[i].rows(), g.values[i].cols(), stream + i).cast<float>();
  return g;
}

Decay decay_of(const ref::Optimizer<float>& opt, int i, optim::Regularization r) {
  if (!opt.decays(i)) return Decay::none;
  return r == optim::Regularization::l2 ? Decay::l2 : r == optim::Regularization::wd ? Decay::wd : Decay::none;
}

/// Three steps of the reference optimizer and of the kernel bodies from the same start; the
/// kernel keeps its state in flat vectors per tensor.
void check_optimizer(const optim::OptimConfig& cfg, const std::string& tag) {
  const NetworkSpec spec = small_net();
  ref::ParamStore<float> p_ref = ref::init_params<float>(spec, 3, ref::Init::glorot_uniform);
  std::vector<std::vector<float>> theta, s1, s2;
  for (const auto& v : p_ref.values) {
    theta.push_back(flat_f(v));
    s1.emplace_back(std::size_t(v.size()), 0.0f);
    s2.emplace_back(std::size_t(v.size()), 0.0f);
  }
  auto opt = ref::make_optimizer<float>(cfg, spec, p_ref);
  const std::uint32_t no_skip = 0;
  for (int k = 0; k < 3; ++k) {
    const double lr = 0.1 / (k + 1);
    const auto g = random_like(p_ref, 100 + 10 * std::uint64_t(k));
    opt->step(p_ref, g, lr, k);
    const double c1 = 1 - std::pow(cfg.adam.beta1, double(k + 1));
    const double c2 = 1 - std::pow(cfg.adam.beta2, double(k + 1));
    for (int i = 0; i < int(theta.size()); ++i) {
      if (!p_ref.info[i].trainable()) continue;
      const auto gf = flat_f(g.values[i]);
      const Index n = Index(gf.size());
      const Decay d = decay_of(*opt, i, cfg.reg.kind);
      if (cfg.kind == optim::OptimizerKind::sgd) {
        launch_host(n, SgdUpdate{theta[i].data(), gf.data(), s1[i].data(), &no_skip, float(lr),
                                 float(cfg.sgd.momentum), float(cfg.reg.weight_decay), d,
                                 cfg.sgd.kind == optim::MomentumKind::nesterov ? Momentum::nesterov
                                                                             : Momentum::heavy_ball});
      } else {
        launch_host(n, AdamUpdate{theta[i].data(), gf.data(), s1[i].data(), s2[i].data(), &no_skip,
                                  float(lr), float(cfg.adam.beta1), float(cfg.adam.beta2),
                                  float(cfg.adam.eps), float(c1), float(c2),
                                  float(cfg.reg.weight_decay), d});
      }
    }
  }
  for (std::size_t i = 0; i < theta.size(); ++i) {
    if (!p_ref.info[i].trainable()) continue;
    const auto c = compare_kernel(tag + " " + p_ref.info[i].name, to_d(theta[i]), flat_d(p_ref.values[i]));
    WDLAB_EXPECT_PASS(c);
    // Same float operations in the same order: expected equal to the last bit (g++ without FMA
    // contraction); printed so a toolchain that contracts shows up.
    MESSAGE(tag << " " << p_ref.info[i].name << ": bit-identical " << std::string(c.max_abs == 0.0 ? "yes" : "no"));
  }
}

}  // namespace

TEST_CASE("kernel SGD and Adam updates match the reference optimizers (every mode)") {
  for (const auto opt : {optim::OptimizerKind::sgd, optim::OptimizerKind::adam})
    for (const auto mom : {optim::MomentumKind::heavy_ball, optim::MomentumKind::nesterov})
      for (const auto reg : {optim::Regularization::none, optim::Regularization::l2, optim::Regularization::wd}) {
        if (opt == optim::OptimizerKind::adam && mom == optim::MomentumKind::nesterov) continue;
        optim::OptimConfig cfg;
        cfg.kind = opt;
        cfg.sgd.kind = mom;
        cfg.reg.kind = reg;
        cfg.reg.weight_decay = reg == optim::Regularization::none ? 0.0 : 0.05;
        cfg.reg.biases = optim::DecayBiases::no;  // so some tensors decay and some do not
        check_optimizer(cfg, optim::to_string(opt) + "/" + optim::to_string(mom) + "/" + optim::to_string(reg));
      }
}

TEST_CASE("kernel optimizer updates: the skip flag leaves state alone - a wrong decay mode fails") {
  std::vector<float> theta{1.0f, -2.0f}, g{0.5f, 0.25f}, v{0.1f, 0.2f}, m{0.0f, 0.0f};
  const auto theta0 = theta, v0 = v;
  const std::uint32_t skip = 1;
  launch_host(2, SgdUpdate{theta.data(), g.data(), v.data(), &skip, 0.1f, 0.9f, 0.0f, Decay::none, Momentum::heavy_ball});
  launch_host(2, AdamUpdate{theta.data(), g.data(), m.data(), v.data(), &skip, 0.1f, 0.9f, 0.999f, 1e-8f, 0.1f, 0.001f, 0.0f, Decay::none});
  CHECK(theta == theta0);
  CHECK(v == v0);
  // L2 and WD differ under momentum (the decay enters v only under L2).
  std::vector<float> a = theta0, va = v0, b = theta0, vb = v0;
  const std::uint32_t go = 0;
  launch_host(2, SgdUpdate{a.data(), g.data(), va.data(), &go, 0.1f, 0.9f, 0.5f, Decay::l2, Momentum::heavy_ball});
  launch_host(2, SgdUpdate{b.data(), g.data(), vb.data(), &go, 0.1f, 0.9f, 0.5f, Decay::wd, Momentum::heavy_ball});
  for (std::size_t i = 0; i < 2; ++i) {
    CHECK(a[i] == doctest::Approx(b[i]).epsilon(1e-6));  // one step: θ − η(μv + g + βθ) either way
    CHECK(va[i] != doctest::Approx(vb[i]).epsilon(1e-3));  // the momentum buffers differ
  }
}

namespace {

/// Lion written out in double from the paper (Chen et al. 2023, Algorithm 2), independently of
/// kernels::LionUpdate: g ← g + βθ (L2); c = β₁m + (1−β₁)g; θ ← θ − η(sign(c) [+ βθ under WD]);
/// m ← β₂m + (1−β₂)g. `sign_of_zero` is 0 in Lion; the negative control sets it to 1.
void lion_scalar(std::vector<double>& theta, std::vector<double>& m, const std::vector<double>& grad, double lr,
                 double b1, double b2, double beta, Decay d, double sign_of_zero = 0.0) {
  for (std::size_t i = 0; i < theta.size(); ++i) {
    double g = grad[i];
    if (d == Decay::l2) g += beta * theta[i];
    const double c = b1 * m[i] + (1 - b1) * g;
    double step = c > 0 ? 1.0 : c < 0 ? -1.0 : sign_of_zero;
    if (d == Decay::wd) step += beta * theta[i];
    theta[i] -= lr * step;
    m[i] = b2 * m[i] + (1 - b2) * g;
  }
}

}  // namespace

TEST_CASE("kernel Lion update: two steps against the paper's rule, sign(0) = 0, L2 differs from WD") {
  // Entry 2 has g = 0 at both steps, so c = 0 (θ moves only by WD); entry 0's second step takes
  // the sign of c = β₁m + (1−β₁)g with m = (1−β₂)g₁: it flips when m is updated with β₁ instead
  // of β₂. Every other |c| is above 1e-3, far from the float/double rounding of the sign.
  const std::vector<float> theta0{1.0f, -2.0f, 0.5f, 3.0f, 0.25f, -0.75f};
  const std::vector<std::vector<float>> grads{{1.0f, -0.5f, 0.0f, 0.3f, -2.0f, 0.7f},
                                              {-0.5f, 0.2f, 0.0f, -0.01f, 1.0f, 0.7f}};
  const double lrs[2] = {0.1, 0.05}, b1 = 0.9, b2 = 0.99, beta = 0.1;  // Lion's default β₁, β₂
  const std::uint32_t go = 0;
  std::vector<std::vector<float>> theta_by_decay;
  for (const Decay d : {Decay::none, Decay::l2, Decay::wd}) {
    CAPTURE(int(d));
    std::vector<float> theta = theta0, m(theta0.size(), 0.0f);
    std::vector<double> th_ref = to_d(theta0), m_ref(theta0.size(), 0.0), th_b1 = th_ref, m_b1 = m_ref,
                        th_s1 = th_ref, m_s1 = m_ref;
    for (int k = 0; k < 2; ++k) {
      launch_host(Index(theta.size()), LionUpdate{theta.data(), grads[std::size_t(k)].data(), m.data(), &go,
                                                  float(lrs[k]), float(b1), float(b2), float(beta), d});
      const auto g = to_d(grads[std::size_t(k)]);
      lion_scalar(th_ref, m_ref, g, lrs[k], b1, b2, beta, d);
      lion_scalar(th_b1, m_b1, g, lrs[k], b1, b1, beta, d);             // control: m with β₁
      lion_scalar(th_s1, m_s1, g, lrs[k], b1, b2, beta, d, 1.0);        // control: sign(0) = 1
    }
    WDLAB_EXPECT_PASS(compare_kernel("lion theta", to_d(theta), th_ref));
    WDLAB_EXPECT_PASS(compare_kernel("lion m", to_d(m), m_ref));
    CHECK_FALSE(compare_kernel("lion theta, m with beta1 (control)", to_d(theta), th_b1).pass);
    if (d != Decay::l2)  // under L2 g = βθ ≠ 0 at entry 2, so c ≠ 0 there
      CHECK_FALSE(compare_kernel("lion theta, sign(0) = 1 (control)", to_d(theta), th_s1).pass);
    if (d == Decay::none) CHECK(theta[2] == theta0[2]);  // c = 0 twice: θ unchanged
    theta_by_decay.push_back(theta);
  }
  // L2 enters the momentum and the sign, WD only θ: after two steps they differ.
  CHECK_FALSE(compare_kernel("lion l2 vs wd (control)", to_d(theta_by_decay[1]), to_d(theta_by_decay[2])).pass);
}

TEST_CASE("kernel Lion update: c = 0 exactly keeps θ, the skip flag keeps everything, a NaN gradient reaches θ") {
  // β₁ = 0.5, m = 0.25, g = −0.25: c = 0.125 − 0.125 = 0 exactly in float.
  std::vector<float> theta{2.0f, 2.0f}, m{0.25f, 0.25f};
  const std::vector<float> g{-0.25f, 0.25f};
  const std::uint32_t go = 0, skip = 1;
  launch_host(2, LionUpdate{theta.data(), g.data(), m.data(), &go, 0.5f, 0.5f, 0.75f, 0.0f, Decay::none});
  CHECK(theta[0] == 2.0f);                         // sign(0) = 0
  CHECK(theta[1] == 1.5f);                         // c = 0.25 > 0: θ − η
  CHECK(m[0] == doctest::Approx(0.125));           // 0.75·0.25 + 0.25·(−0.25)
  CHECK(m[1] == doctest::Approx(0.25));            // 0.75·0.25 + 0.25·0.25
  const auto theta1 = theta, m1 = m;
  launch_host(2, LionUpdate{theta.data(), g.data(), m.data(), &skip, 0.5f, 0.5f, 0.75f, 0.1f, Decay::wd});
  CHECK(theta == theta1);
  CHECK(m == m1);
  const std::vector<float> bad{std::numeric_limits<float>::quiet_NaN(), 1.0f};
  launch_host(2, LionUpdate{theta.data(), bad.data(), m.data(), &go, 0.5f, 0.5f, 0.75f, 0.0f, Decay::none});
  CHECK(std::isnan(theta[0]));  // not sign(NaN) = 0, which would hide the non-finite gradient
  CHECK(std::isfinite(theta[1]));
}

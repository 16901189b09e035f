// Kernel bodies of the CUDA backend run on the CPU by the host launcher, against the reference
// ops (double, on the same float-rounded inputs): ReLU, tanh, bias, residual, global average pooling,
// max-pooling, batch normalization, KFC patches, reductions. Each case prints its evidence and
// has a negative control that must fail. No GPU needed; the GPU suite runs the same bodies on
// the device and compares with these host results.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "cuda/kernels/batchnorm.hpp"
#include "cuda/kernels/elementwise.hpp"
#include "cuda/kernels/host_launch.hpp"
#include "cuda/kernels/measure.hpp"
#include "cuda/kernels/patches.hpp"
#include "cuda/kernels/pool.hpp"
#include "cuda/kernels/reduce.hpp"
#include "kernel_test_util.hpp"
#include "reference/ops/activation.hpp"
#include "reference/ops/batchnorm.hpp"
#include "reference/ops/conv2d.hpp"
#include "reference/ops/pool.hpp"
#include "reference/ops/tanh.hpp"

using namespace wdlab;
using namespace wdlab::cuda::kernels;
using namespace wdlab::cuda::testing;

TEST_CASE("kernel ReLU forward/backward equal the reference exactly, NaN propagates") {
  Mat<double> x = rounded(normal_mat(37, 5, 1));
  x(3, 1) = 0.0;  // the kink: derivative 0
  const Mat<double> dy = rounded(normal_mat(37, 5, 2));
  Mat<double> y_ref, dx_ref;
  ref::relu_fprop(x, y_ref);
  ref::relu_bprop(x, dy, dx_ref);
  const auto xf = flat_f(x), dyf = flat_f(dy);
  std::vector<float> y(xf.size()), dx(xf.size(), 5.0f);
  launch_host(Index(xf.size()), ReluForward{xf.data(), y.data()});
  launch_host(Index(xf.size()), ReluBackward{xf.data(), dyf.data(), dx.data(), Accumulate::overwrite});
  WDLAB_EXPECT_PASS(compare_exact("relu y", to_d(y), flat_d(y_ref)));
  WDLAB_EXPECT_PASS(compare_exact("relu dx", to_d(dx), flat_d(dx_ref)));
  // Accumulate::add sums into what is there.
  launch_host(Index(xf.size()), ReluBackward{xf.data(), dyf.data(), dx.data(), Accumulate::add});
  WDLAB_EXPECT_PASS(compare_exact("relu dx added twice", to_d(dx), flat_d(Mat<double>(2 * dx_ref))));
  // Negative control: the derivative taken from the output's sign at a negative input differs.
  std::vector<float> wrong(xf.size());
  launch_host(Index(xf.size()), ReluBackward{dyf.data(), dyf.data(), wrong.data(), Accumulate::overwrite});
  CHECK_FALSE(compare_exact("relu dx from dy (control)", to_d(wrong), flat_d(dx_ref)).pass);
  // NaN propagates forward.
  std::vector<float> nan_in{std::numeric_limits<float>::quiet_NaN(), -1.0f}, nan_out(2);
  launch_host(2, ReluForward{nan_in.data(), nan_out.data()});
  CHECK(std::isnan(nan_out[0]));
  CHECK(nan_out[1] == 0.0f);
}

TEST_CASE("kernel tanh forward/backward match the double reference at the kernel tolerance") {
  const Mat<double> x = rounded(normal_mat(37, 5, 11, 2.0));  // |x| up to ~6: saturated entries too
  const Mat<double> dy = rounded(normal_mat(37, 5, 12));
  Mat<double> y_ref, dx_ref;
  ref::tanh_fprop(x, y_ref);
  ref::tanh_bprop(y_ref, dy, dx_ref);
  const auto xf = flat_f(x), dyf = flat_f(dy);
  std::vector<float> y(xf.size()), dx(xf.size(), 5.0f);
  launch_host(Index(xf.size()), TanhForward{xf.data(), y.data()});
  launch_host(Index(xf.size()), TanhBackward{y.data(), dyf.data(), dx.data(), Accumulate::overwrite});
  WDLAB_EXPECT_PASS(compare_kernel("tanh y", to_d(y), flat_d(y_ref)));
  WDLAB_EXPECT_PASS(compare_kernel("tanh dx", to_d(dx), flat_d(dx_ref)));
  launch_host(Index(xf.size()), TanhBackward{y.data(), dyf.data(), dx.data(), Accumulate::add});
  WDLAB_EXPECT_PASS(compare_kernel("tanh dx added twice", to_d(dx), flat_d(Mat<double>(2 * dx_ref))));
  // Negative control: the derivative taken at the input (1 − x²) instead of the output differs.
  std::vector<float> wrong(xf.size());
  launch_host(Index(xf.size()), TanhBackward{xf.data(), dyf.data(), wrong.data(), Accumulate::overwrite});
  CHECK_FALSE(compare_kernel("tanh dx from x (control)", to_d(wrong), flat_d(dx_ref)).pass);
}

TEST_CASE("kernel bias add and per-channel bias gradient match the reference sums") {
  const Index N = 3, K = 4, HW = 6;  // conv-like output, NCHW
  const Mat<double> y0 = rounded(normal_mat(K * HW, N, 3));
  const Mat<double> b = rounded(normal_mat(K, 1, 4));
  Mat<double> y_ref = y0;
  for (Index n = 0; n < N; ++n)
    for (Index k = 0; k < K; ++k) y_ref.col(n).segment(k * HW, HW).array() += b(k);
  auto y = flat_f(y0);
  const auto bf = flat_f(b);
  launch_host(N * K * HW, BiasAdd{bf.data(), y.data(), K, HW});
  WDLAB_EXPECT_PASS(compare_kernel("bias add", to_d(y), flat_d(y_ref)));

  // db[k] = Σ_{n,t} dy[n,k,t], as conv2d_bprop_filter's db.
  Vec<double> db_ref = Vec<double>::Zero(K);
  for (Index n = 0; n < N; ++n)
    for (Index k = 0; k < K; ++k) db_ref(k) += y0.col(n).segment(k * HW, HW).sum();
  const auto dyf = flat_f(y0);
  // Several lane counts, the same sums: one lane, fewer lanes than HW, more than HW (the walk
  // wraps several examples per stride), more lanes than entries (idle lanes), and the default.
  for (const Index lanes : {Index(1), Index(3), HW + 2, N * HW + 5, channel_lanes(N * HW)}) {
    std::vector<double> partial(static_cast<std::size_t>(K * lanes));
    std::vector<float> db(std::size_t(K), 9.0f);
    launch_host(K * lanes, ChannelPartialSums{dyf.data(), nullptr, nullptr, partial.data(), K, HW,
                                              N * HW, lanes, ChannelTerm::value});
    launch_host(K, SumPartialsToFloat{partial.data(), db.data(), lanes, Accumulate::overwrite});
    WDLAB_EXPECT_PASS(compare_kernel("bias grad lanes " + std::to_string(lanes), to_d(db), flat_d(db_ref)));
  }
  // Negative control: summing with the wrong HW mixes channels.
  std::vector<double> partial(static_cast<std::size_t>(K));
  std::vector<float> db(static_cast<std::size_t>(K));
  launch_host(K, ChannelPartialSums{dyf.data(), nullptr, nullptr, partial.data(), K, HW - 1,
                                    N * (HW - 1), 1, ChannelTerm::value});
  launch_host(K, SumPartialsToFloat{partial.data(), db.data(), 1, Accumulate::overwrite});
  CHECK_FALSE(compare_kernel("bias grad, wrong HW (control)", to_d(db), flat_d(db_ref)).pass);
}

TEST_CASE("kernel residual add, cotangent accumulation and global average pooling") {
  const Index N = 2, C = 3, HW = 10;
  const Mat<double> a = rounded(normal_mat(C * HW, N, 5)), b = rounded(normal_mat(C * HW, N, 6));
  const auto af = flat_f(a), bf = flat_f(b);
  std::vector<float> y(af.size());
  launch_host(Index(af.size()), ResidualAdd{af.data(), bf.data(), y.data()});
  WDLAB_EXPECT_PASS(compare_exact("residual y", to_d(y), flat_d(rounded(a + b))));
  std::vector<float> acc(af.size());
  launch_host(Index(af.size()), AccumulateInto{af.data(), acc.data(), Accumulate::overwrite});
  launch_host(Index(af.size()), AccumulateInto{bf.data(), acc.data(), Accumulate::add});
  WDLAB_EXPECT_PASS(compare_exact("accumulate a then b", to_d(acc), to_d(y)));

  const ref::GlobalPoolGeometry g{.N = int(N), .C = int(C), .H = 2, .W = 5};
  Mat<double> gy_ref, gdx_ref;
  ref::global_avgpool_fprop(g, a, gy_ref);
  const Mat<double> gdy = rounded(normal_mat(C, N, 7));
  ref::global_avgpool_bprop(g, gdy, gdx_ref);
  std::vector<float> gy(static_cast<std::size_t>(N * C)), gdx(af.size());
  launch_host(N * C, GlobalAvgPoolForward{af.data(), gy.data(), HW});
  const auto gdyf = flat_f(gdy);
  launch_host(N * C * HW, GlobalAvgPoolBackward{gdyf.data(), gdx.data(), HW, Accumulate::overwrite});
  WDLAB_EXPECT_PASS(compare_kernel("gap y", to_d(gy), flat_d(gy_ref)));
  WDLAB_EXPECT_PASS(compare_kernel("gap dx", to_d(gdx), flat_d(gdx_ref)));
  launch_host(N * C, GlobalAvgPoolForward{af.data(), gy.data(), HW - 1});
  CHECK_FALSE(compare_kernel("gap y, wrong HW (control)", to_d(gy), flat_d(gy_ref)).pass);
}

TEST_CASE("kernel max-pooling (overlapping windows, ties) equals the reference exactly") {
  for (const auto& [window, stride] : {std::pair{2, 2}, std::pair{3, 2}, std::pair{3, 1}}) {
    const Pool2dGeometry g{.N = 2, .C = 3, .H = 7, .W = 6, .window = window, .stride = stride};
    // Values rounded to a coarse grid so windows hold ties (first maximum wins).
    Mat<double> x = (normal_mat(Index(g.C) * g.H * g.W, g.N, 8) * 2).array().round() / 2;
    const Index P = g.P(), Q = g.Q(), outs = Index(g.N) * g.C * P * Q;
    const Mat<double> dy = rounded(normal_mat(Index(g.C) * P * Q, g.N, 9));
    Mat<double> y_ref, dx_ref;
    const auto ctx = ref::maxpool2d_fprop(g, x, y_ref);
    ref::maxpool2d_bprop(g, ctx, dy, dx_ref);
    const auto xf = flat_f(x), dyf = flat_f(dy);
    const PoolShape s{g.C, g.H, g.W, P, Q, g.window, g.stride};
    std::vector<float> y(static_cast<std::size_t>(outs)), dx(xf.size());
    std::vector<std::int32_t> arg(static_cast<std::size_t>(outs));
    launch_host(outs, MaxPoolForward{xf.data(), y.data(), arg.data(), s});
    launch_host(Index(xf.size()), MaxPoolBackward{dyf.data(), arg.data(), dx.data(), s, Accumulate::overwrite});
    const std::string tag = " w" + std::to_string(window) + "s" + std::to_string(stride);
    WDLAB_EXPECT_PASS(compare_exact("maxpool y" + tag, to_d(y), flat_d(y_ref)));
    std::vector<double> arg_ref(static_cast<std::size_t>(outs));
    for (Index i = 0; i < outs; ++i) arg_ref[std::size_t(i)] = double(ctx.argmax.data()[i]);
    WDLAB_EXPECT_PASS(compare_exact("maxpool argmax" + tag, to_d(arg), arg_ref));
    // Overlapping windows sum up to ⌈window/stride⌉² cotangents in float (the reference: double).
    WDLAB_EXPECT_PASS(compare_kernel("maxpool dx" + tag, to_d(dx), flat_d(dx_ref)));
  }
  // Negative control: last maximum instead of first (ties) changes the argmax.
  std::vector<float> x{1.0f, 1.0f, 0.0f, 0.0f}, y(1);
  std::vector<std::int32_t> arg(1);
  launch_host(1, MaxPoolForward{x.data(), y.data(), arg.data(), PoolShape{1, 2, 2, 1, 1, 2, 2}});
  CHECK(arg[0] == 0);
}

namespace {

struct BnRun {
  std::vector<float> y, xhat, dx, running_mean, running_var;
  std::vector<double> mean, var, invstd, dgamma, dbeta;
};

/// Train-mode BN through the kernel bodies, as the backend chains them.
BnRun bn_host(const std::vector<float>& x, const std::vector<float>& dy, Index N, Index C,
              Index HW, double eps, const float* gamma, const float* beta, Index lanes) {
  const Index m = N * HW, chunks = lanes, total = N * C * HW;
  BnRun r;
  std::vector<double> partial(static_cast<std::size_t>(C * chunks));
  r.mean.resize(static_cast<std::size_t>(C));
  r.var.resize(static_cast<std::size_t>(C));
  r.invstd.resize(static_cast<std::size_t>(C));
  launch_host(C * chunks, ChannelPartialSums{x.data(), nullptr, nullptr, partial.data(), C, HW, m,
                                             lanes, ChannelTerm::value});
  launch_host(C, SumPartials{partial.data(), r.mean.data(), chunks, 1.0 / double(m)});
  launch_host(C * chunks, ChannelPartialSums{x.data(), nullptr, r.mean.data(), partial.data(), C,
                                             HW, m, lanes, ChannelTerm::centred_square});
  launch_host(C, SumPartials{partial.data(), r.var.data(), chunks, 1.0 / double(m)});
  launch_host(C, BnInvStd{r.var.data(), r.invstd.data(), eps});
  r.y.resize(static_cast<std::size_t>(total));
  r.xhat.resize(static_cast<std::size_t>(total));
  launch_host(total, BnNormalize{x.data(), r.mean.data(), r.invstd.data(), gamma, beta,
                                 r.xhat.data(), r.y.data(), C, HW});
  r.running_mean.assign(std::size_t(C), 0.5f);
  r.running_var.assign(std::size_t(C), 2.0f);
  const std::uint32_t no_skip = 0;
  launch_host(C, BnRunningUpdate{r.mean.data(), r.var.data(), r.running_mean.data(),
                                 r.running_var.data(), &no_skip, 0.9f, m});
  std::vector<double> sum_dy(static_cast<std::size_t>(C)), sum_dy_xhat(static_cast<std::size_t>(C));
  launch_host(C * chunks, ChannelPartialSums{dy.data(), nullptr, nullptr, partial.data(), C, HW, m,
                                             lanes, ChannelTerm::value});
  launch_host(C, SumPartials{partial.data(), sum_dy.data(), chunks, 1.0});
  launch_host(C * chunks, ChannelPartialSums{dy.data(), r.xhat.data(), nullptr, partial.data(), C,
                                             HW, m, lanes, ChannelTerm::product});
  launch_host(C, SumPartials{partial.data(), sum_dy_xhat.data(), chunks, 1.0});
  r.dx.resize(static_cast<std::size_t>(total));
  launch_host(total, BnBackward{dy.data(), r.xhat.data(), r.invstd.data(), sum_dy.data(),
                                sum_dy_xhat.data(), gamma, r.dx.data(), C, HW, m,
                                Accumulate::overwrite});
  r.dgamma = sum_dy_xhat;
  r.dbeta = sum_dy;
  return r;
}

}  // namespace

TEST_CASE("kernel batch normalization (train, eval, running statistics) matches the reference") {
  const Index N = 5, C = 3, HW = 7;
  const double eps = 1e-3;
  const ref::BatchNormGeometry g{.N = int(N), .C = int(C), .HW = int(HW)};
  const Mat<double> x = rounded(normal_mat(C * HW, N, 10, 1.5, 0.7));
  const Mat<double> dy = rounded(normal_mat(C * HW, N, 11));
  const Vec<double> gamma = rounded(normal_mat(C, 1, 12, 0.3, 1.0));
  const Vec<double> beta = rounded(normal_mat(C, 1, 13));
  const auto xf = flat_f(x), dyf = flat_f(dy), gf = flat_f(gamma), bf = flat_f(beta);
  for (const Affine affine : {Affine::off, Affine::on}) {
    const bool on = affine == Affine::on;
    const std::string tag = on ? " (affine)" : "";
    Mat<double> y_ref, dx_ref;
    Vec<double> dg_ref, db_ref;
    const auto ctx = ref::batchnorm_fprop_train(g, x, eps, on ? &gamma : nullptr,
                                                on ? &beta : nullptr, y_ref);
    ref::batchnorm_bprop(g, ctx, dy, on ? &gamma : nullptr, dx_ref, on ? &dg_ref : nullptr,
                         on ? &db_ref : nullptr);
    Vec<double> rm = Vec<double>::Constant(C, double(0.5f)), rv = Vec<double>::Constant(C, 2.0);
    ref::batchnorm_update_running(rm, rv, ctx, 0.9);
    for (const Index lanes : {Index(1), Index(4), channel_lanes(N * HW), Index(1024)}) {
      const BnRun r = bn_host(xf, dyf, N, C, HW, eps, on ? gf.data() : nullptr,
                              on ? bf.data() : nullptr, lanes);
      const std::string t = tag + " lanes " + std::to_string(lanes);
      WDLAB_EXPECT_PASS(compare_kernel("bn mean" + t, r.mean, flat_d(ctx.mean)));
      WDLAB_EXPECT_PASS(compare_kernel("bn var" + t, r.var, flat_d(ctx.var)));
      WDLAB_EXPECT_PASS(compare_kernel("bn y" + t, to_d(r.y), flat_d(y_ref)));
      WDLAB_EXPECT_PASS(compare_kernel("bn xhat" + t, to_d(r.xhat), flat_d(ctx.xhat)));
      WDLAB_EXPECT_PASS(compare_kernel("bn dx" + t, to_d(r.dx), flat_d(dx_ref)));
      WDLAB_EXPECT_PASS(compare_kernel("bn running_mean" + t, to_d(r.running_mean), flat_d(rm)));
      WDLAB_EXPECT_PASS(compare_kernel("bn running_var" + t, to_d(r.running_var), flat_d(rv)));
      if (on) {
        WDLAB_EXPECT_PASS(compare_kernel("bn dgamma" + t, r.dgamma, flat_d(dg_ref)));
        WDLAB_EXPECT_PASS(compare_kernel("bn dbeta" + t, r.dbeta, flat_d(db_ref)));
      }
    }
  }
  // Eval mode with running statistics.
  const Vec<double> rmean = rounded(normal_mat(C, 1, 14)), rvar = rounded(normal_mat(C, 1, 15, 0.2, 1.0));
  Mat<double> ye_ref;
  ref::batchnorm_fprop_eval(g, x, rmean, rvar, eps, &gamma, &beta, ye_ref);
  const auto rmf = flat_f(rmean), rvf = flat_f(rvar);
  std::vector<float> ye(xf.size());
  launch_host(N * C * HW, BnEvalForward{xf.data(), rmf.data(), rvf.data(), gf.data(), bf.data(),
                                        ye.data(), C, HW, float(eps)});
  WDLAB_EXPECT_PASS(compare_kernel("bn eval y", to_d(ye), flat_d(ye_ref)));
  // Negative controls: the skip flag leaves the running statistics alone; the biased variance
  // (what TF's dense BN feeds) is not what the reference's running variance holds.
  const BnRun r = bn_host(xf, dyf, N, C, HW, eps, nullptr, nullptr, 8);
  std::vector<float> keep_m(std::size_t(C), 0.5f), keep_v(std::size_t(C), 2.0f);
  const std::uint32_t skip = 1;
  launch_host(C, BnRunningUpdate{r.mean.data(), r.var.data(), keep_m.data(), keep_v.data(), &skip, 0.9f, N * HW});
  CHECK(keep_m == std::vector<float>(std::size_t(C), 0.5f));
  CHECK(keep_v == std::vector<float>(std::size_t(C), 2.0f));
  Vec<double> rm = Vec<double>::Constant(C, 0.5), rv = Vec<double>::Constant(C, 2.0);
  Mat<double> y_tmp;
  const auto ctx = ref::batchnorm_fprop_train(g, x, eps, nullptr, nullptr, y_tmp);
  ref::batchnorm_update_running(rm, rv, ctx, 0.9, ref::RunningVariance::biased);
  CHECK_FALSE(compare_kernel("bn running_var vs biased (control)", to_d(r.running_var), flat_d(rv)).pass);
}

TEST_CASE("kernel KFC patches equal reference conv2d_patches exactly") {
  const std::vector<Conv2dGeometry> geoms{
      {.N = 2, .C = 3, .H = 5, .W = 6, .K = 4, .R = 3, .S = 3, .pad = 1, .stride = 1},
      {.N = 3, .C = 2, .H = 7, .W = 5, .K = 2, .R = 3, .S = 3, .pad = 1, .stride = 2},
      {.N = 1, .C = 4, .H = 4, .W = 4, .K = 3, .R = 1, .S = 1, .pad = 0, .stride = 1},
      {.N = 2, .C = 2, .H = 6, .W = 6, .K = 2, .R = 2, .S = 3, .pad = 0, .stride = 2},
  };
  for (const Conv2dGeometry& g : geoms) {
    const Mat<double> x = (normal_mat(Index(g.C) * g.H * g.W, g.N, 16) * 4).array().round();
    const auto xf = flat_f(x);
    for (const auto h : {ref::Homogeneous::off, ref::Homogeneous::on}) {
      const Mat<double> a_ref = ref::conv2d_patches(g, x, h);
      const Index rows = g.patch_size() + (h == ref::Homogeneous::on ? 1 : 0);
      std::vector<float> a(std::size_t(rows * g.N * g.locations()));
      const ConvShape s{g.C, g.H, g.W, g.R, g.S, g.P(), g.Q(), g.pad, g.stride};
      launch_host(Index(a.size()), ConvPatches{xf.data(), a.data(), s, rows});
      WDLAB_EXPECT_PASS(compare_exact("patches " + g.describe(), to_d(a), flat_d(a_ref)));
    }
  }
  // Negative control: a wrong stride reads other pixels.
  const Conv2dGeometry g = geoms[1];
  const Mat<double> x = (normal_mat(Index(g.C) * g.H * g.W, g.N, 16) * 4).array().round();
  const auto xf = flat_f(x);
  const Mat<double> a_ref = ref::conv2d_patches(g, x, ref::Homogeneous::off);
  std::vector<float> a(std::size_t(a_ref.size()));
  launch_host(Index(a.size()), ConvPatches{xf.data(), a.data(),
                                           ConvShape{g.C, g.H, g.W, g.R, g.S, g.P(), g.Q(), g.pad, 1},
                                           g.patch_size()});
  CHECK_FALSE(compare_exact("patches, stride 1 for 2 (control)", to_d(a), flat_d(a_ref)).pass);
}

namespace {
/// Σ_j a_j a_jᵀ / cols over the columns of a column-major rows × cols matrix: what one cublasSsyrk
/// with α = 1/cols computes (in double here).
Mat<double> syrk_host(const std::vector<float>& a, Index rows, Index cols) {
  Mat<double> out = Mat<double>::Zero(rows, rows);
  for (Index j = 0; j < cols; ++j)
    for (Index r = 0; r < rows; ++r)
      for (Index c = 0; c < rows; ++c) out(r, c) += double(a[std::size_t(j * rows + r)]) * double(a[std::size_t(j * rows + c)]);
  return out / double(cols);
}
}  // namespace

TEST_CASE("kernel KFC factor layouts: Ω from patches and Γ from cotangent columns match the reference") {
  const Conv2dGeometry g{.N = 3, .C = 2, .H = 6, .W = 5, .K = 4, .R = 3, .S = 3, .pad = 1, .stride = 2};
  const Index T = g.locations(), cols = Index(g.N) * T;
  const Mat<double> x = rounded(normal_mat(Index(g.C) * g.H * g.W, g.N, 40));
  const Mat<double> ds = rounded(normal_mat(Index(g.K) * T, g.N, 41));
  const auto xf = flat_f(x), dsf = flat_f(ds);
  const Index rows = g.patch_size() + 1;  // with the bias row
  std::vector<float> a(static_cast<std::size_t>(rows * cols)), d(static_cast<std::size_t>(g.K * cols));
  launch_host(rows * cols, ConvPatches{xf.data(), a.data(), ConvShape{g.C, g.H, g.W, g.R, g.S, g.P(), g.Q(), g.pad, g.stride}, rows});
  launch_host(g.K * cols, CotangentColumns{dsf.data(), d.data(), g.K, T});
  const Mat<double> omega_ref = ref::conv2d_kfc_input_factor(g, x, ref::Homogeneous::on);
  const Mat<double> gamma_ref = ref::conv2d_kfc_output_factor(g, ds);
  WDLAB_EXPECT_PASS(compare_kernel("kfc Omega via patches + syrk", flat_d(syrk_host(a, rows, cols)), flat_d(omega_ref)));
  WDLAB_EXPECT_PASS(compare_kernel("kfc Gamma via columns + syrk", flat_d(syrk_host(d, g.K, cols)), flat_d(gamma_ref)));
  // Negative control: reading ds as if it were already K × N·T (no rearrangement) is wrong.
  CHECK_FALSE(compare_kernel("kfc Gamma without rearranging (control)", flat_d(syrk_host(dsf, g.K, cols)), flat_d(gamma_ref)).pass);
}

TEST_CASE("kernel flat reductions: sum, sum of squares, non-finite count") {
  std::vector<float> x(1003);
  double s = 0, s2 = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    x[i] = float(rng::normal(3, rng::Purpose::theory, 99, i));
    s += double(x[i]);
    s2 += double(x[i]) * double(x[i]);
  }
  for (const Index chunk : {Index(1), Index(64), Index(4096)}) {
    const Index chunks = chunk_count(Index(x.size()), chunk);
    std::vector<double> partial(std::size_t(3 * chunks)), out(3, -1.0);
    launch_host(chunks, FlatPartialStats{x.data(), partial.data(), Index(x.size()), chunk});
    launch_host(1, FlatStatsTotal{partial.data(), out.data(), chunks, Accumulate::overwrite});
    WDLAB_EXPECT_PASS(compare_kernel("flat sum, sumsq chunk " + std::to_string(chunk),
                                     {out[0], out[1]}, {s, s2}));
    CHECK(out[2] == 0.0);
  }
  x[17] = std::numeric_limits<float>::infinity();
  x[500] = std::numeric_limits<float>::quiet_NaN();
  std::vector<double> partial(3 * 16), out(3);
  launch_host(16, FlatPartialStats{x.data(), partial.data(), Index(x.size()), 64});
  launch_host(1, FlatStatsTotal{partial.data(), out.data(), 16, Accumulate::overwrite});
  CHECK(out[2] == 2.0);  // both found; the count is what the step's non-finite flag reads
}

TEST_CASE("kernel BN with the fused ReLU writes the BN output and relu of it, bit for bit as two kernels") {
  // CudaBackend::forward fuses a ReLU that reads only the BN before it into BN's kernel; the
  // fused output must be exactly what ReluForward makes of the BN output, NaN kept.
  const Index N = 3, C = 4, HW = 5, total = N * C * HW;
  std::vector<float> x(static_cast<std::size_t>(total));
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = float(std::sin(0.7 * double(i)) * 3.0 - 0.4);
  x[7] = std::numeric_limits<float>::quiet_NaN();
  const std::vector<double> mean{0.1, -0.2, 0.3, 0.0}, invstd{1.5, 0.7, 2.0, 1.0};
  const std::vector<float> gamma{1.2f, -0.8f, 0.5f, 2.0f}, beta{0.1f, 0.2f, -0.3f, 0.0f};
  const std::vector<float> rmean{0.1f, -0.2f, 0.3f, 0.0f}, rvar{0.4f, 1.1f, 0.2f, 1.0f};
  for (const bool affine : {false, true}) {
    CAPTURE(affine);
    const float* g = affine ? gamma.data() : nullptr;
    const float* b = affine ? beta.data() : nullptr;
    std::vector<float> y1(x.size()), r1(x.size()), y2(x.size()), r2(x.size(), -7.0f), xh(x.size());
    // Train mode: two kernels, then the fused one.
    launch_host(total, BnNormalize{x.data(), mean.data(), invstd.data(), g, b, affine ? xh.data() : nullptr, y1.data(), C, HW});
    launch_host(total, ReluForward{y1.data(), r1.data()});
    launch_host(total, BnNormalize{x.data(), mean.data(), invstd.data(), g, b, affine ? xh.data() : nullptr, y2.data(), C, HW,
                                   r2.data()});
    CHECK(std::memcmp(y1.data(), y2.data(), y1.size() * sizeof(float)) == 0);
    CHECK(std::memcmp(r1.data(), r2.data(), r1.size() * sizeof(float)) == 0);  // NaN at 7 included
    CHECK(std::isnan(r2[7]));
    // Eval mode, the same.
    launch_host(total, BnEvalForward{x.data(), rmean.data(), rvar.data(), g, b, y1.data(), C, HW, 1e-3f});
    launch_host(total, ReluForward{y1.data(), r1.data()});
    launch_host(total, BnEvalForward{x.data(), rmean.data(), rvar.data(), g, b, y2.data(), C, HW, 1e-3f, r2.data()});
    CHECK(std::memcmp(y1.data(), y2.data(), y1.size() * sizeof(float)) == 0);
    CHECK(std::memcmp(r1.data(), r2.data(), r1.size() * sizeof(float)) == 0);
    // Control: the comparison has teeth, the ReLU zeroed some of BN's outputs.
    int zeroed = 0;
    for (std::size_t i = 0; i < x.size(); ++i) zeroed += r1[i] == 0.0f && y1[i] < 0.0f;
    CHECK(zeroed > 5);
  }
}

namespace {

/// BN's backward with the ReLU after it, the two ways CudaBackend::backward can run it:
/// two_kernels (ReluBackward stores dŷ = dr ⊙ 1[y > 0], two channel sums read it, BnBackward
/// reads it) and fused (relu_backward_fused: BnReluPartialSums and BnBackward::relu_in read dr
/// and y; dŷ stored only when asked, as under a capture).
struct BnReluBackwardRun {
  std::vector<float> dyhat, dx;
  std::vector<double> sums;  // Σdŷ[C], Σdŷ⊙x̂[C]
};

struct BnReluBackwardInput {
  std::vector<float> dr, y, xhat;  // xhat empty: no affine, x̂ is y
  std::vector<double> invstd;
  const float* gamma = nullptr;
  Index N = 0, C = 0, HW = 0;
  const float* xh() const { return xhat.empty() ? y.data() : xhat.data(); }
};

BnReluBackwardRun bn_relu_two_kernels(const BnReluBackwardInput& in, const std::vector<float>& dx0, Accumulate mode) {
  const Index m = in.N * in.HW, lanes = channel_lanes(m), total = in.N * in.C * in.HW;
  BnReluBackwardRun r{std::vector<float>(in.y.size(), -3.0f), dx0, std::vector<double>(2 * std::size_t(in.C))};
  std::vector<double> partial(std::size_t(in.C * lanes));
  launch_host(total, ReluBackward{in.y.data(), in.dr.data(), r.dyhat.data(), Accumulate::overwrite});
  launch_host(in.C * lanes, ChannelPartialSums{r.dyhat.data(), nullptr, nullptr, partial.data(), in.C, in.HW, m,
                                               lanes, ChannelTerm::value});
  launch_host(in.C, SumPartials{partial.data(), r.sums.data(), lanes, 1.0});
  launch_host(in.C * lanes, ChannelPartialSums{r.dyhat.data(), in.xh(), nullptr, partial.data(), in.C, in.HW, m,
                                               lanes, ChannelTerm::product});
  launch_host(in.C, SumPartials{partial.data(), r.sums.data() + in.C, lanes, 1.0});
  launch_host(total, BnBackward{r.dyhat.data(), in.xh(), in.invstd.data(), r.sums.data(), r.sums.data() + in.C,
                                in.gamma, r.dx.data(), in.C, in.HW, m, mode});
  return r;
}

BnReluBackwardRun bn_relu_fused(const BnReluBackwardInput& in, const std::vector<float>& dx0, Accumulate mode,
                                bool store_dyhat) {
  const Index m = in.N * in.HW, lanes = channel_lanes(m), total = in.N * in.C * in.HW;
  BnReluBackwardRun r{std::vector<float>(in.y.size(), -3.0f), dx0, std::vector<double>(2 * std::size_t(in.C))};
  std::vector<double> partial(std::size_t(2 * in.C * lanes), std::numeric_limits<double>::quiet_NaN());
  launch_host(in.C * lanes, BnReluPartialSums{in.dr.data(), in.y.data(), in.xh(), store_dyhat ? r.dyhat.data() : nullptr,
                                              partial.data(), in.C, in.HW, m, lanes});
  launch_host(2 * in.C, SumPartials{partial.data(), r.sums.data(), lanes, 1.0});
  launch_host(total, BnBackward{in.dr.data(), in.xh(), in.invstd.data(), r.sums.data(), r.sums.data() + in.C,
                                in.gamma, r.dx.data(), in.C, in.HW, m, mode, in.y.data()});
  return r;
}

template <class T>
bool same_bits(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
}

}  // namespace

TEST_CASE("kernel BN backward with the fused ReLU equals ReLU backward then BN backward, bit for bit") {
  // CudaBackend::backward fuses a ReLU that is the only reader of the BN before it
  // (relu_backward_fused): BN's kernels read the ReLU's cotangent dr and BN's output y and apply
  // the mask themselves. Sums, input gradient and (under a capture) the stored dŷ must be exactly
  // the two-kernel path's. Two geometries: lanes < HW (q = 0) and lanes > HW (q ≥ 1), both with
  // several entries per lane.
  struct Geometry {
    Index N, C, HW;
  };
  const std::vector<float> gamma{1.2f, -0.8f, 0.5f};
  for (const Geometry geo : {Geometry{5, 3, 37}, Geometry{70, 2, 5}}) {
    for (const bool affine : {false, true}) {
      CAPTURE(geo.N);
      CAPTURE(geo.HW);
      CAPTURE(affine);
      const Index total = geo.N * geo.C * geo.HW, m = geo.N * geo.HW;
      REQUIRE(channel_lanes(m) > 1);
      REQUIRE(m / channel_lanes(m) >= 5);
      BnReluBackwardInput in;
      in.N = geo.N, in.C = geo.C, in.HW = geo.HW;
      in.gamma = affine ? gamma.data() : nullptr;
      in.invstd = {1.5, 0.7, 2.0};
      in.invstd.resize(std::size_t(geo.C));
      in.dr.resize(std::size_t(total));
      in.y.resize(std::size_t(total));
      for (std::size_t i = 0; i < in.y.size(); ++i) {
        in.y[i] = float(std::sin(0.37 * double(i)) * 2.0 - 0.3);
        in.dr[i] = float(std::cos(1.3 * double(i)) * 0.8 + 0.1);
      }
      if (affine) {
        in.xhat.resize(std::size_t(total));
        for (std::size_t i = 0; i < in.xhat.size(); ++i) in.xhat[i] = float(std::sin(0.11 * double(i) + 1.0));
      }
      // The mask's edges: y = +0 and −0 (derivative 0), y = NaN (0; with affine only, where x̂
      // is a separate finite tensor: without, x̂ = y would carry the NaN into Σdŷ⊙x̂), and a NaN
      // cotangent where the mask is 0 (dropped, as ReluBackward's select drops it).
      in.y[3] = 0.0f;
      in.y[4] = -0.0f;
      if (affine) in.y[9] = std::numeric_limits<float>::quiet_NaN();
      std::size_t masked = 0;
      for (std::size_t i = 0; i < in.y.size(); ++i) masked += !(in.y[i] > 0.0f);
      for (std::size_t i = 0; i < in.y.size(); ++i)
        if (!(in.y[i] > 0.0f) && i > 10) {
          in.dr[i] = std::numeric_limits<float>::quiet_NaN();
          break;
        }
      CHECK(masked > std::size_t(total) / 4);  // the mask does work in this test
      std::vector<float> dx0(static_cast<std::size_t>(total));
      for (std::size_t i = 0; i < dx0.size(); ++i) dx0[i] = float(0.01 * double(i) - 0.2);

      for (const Accumulate mode : {Accumulate::overwrite, Accumulate::add}) {
        const BnReluBackwardRun two = bn_relu_two_kernels(in, dx0, mode);
        const BnReluBackwardRun fused = bn_relu_fused(in, dx0, mode, true);
        const BnReluBackwardRun fused_quiet = bn_relu_fused(in, dx0, mode, false);
        CHECK(same_bits(two.sums, fused.sums));
        CHECK(same_bits(two.dx, fused.dx));
        CHECK(same_bits(two.dyhat, fused.dyhat));  // what a capture downloads as BN's cotangent
        CHECK(same_bits(two.dx, fused_quiet.dx));  // storing dŷ or not changes nothing else
        CHECK(same_bits(two.sums, fused_quiet.sums));
        CHECK(fused_quiet.dyhat == std::vector<float>(in.y.size(), -3.0f));  // not written
        for (const double v : fused.sums) CHECK(std::isfinite(v));  // the masked NaN was dropped
      }
      // Independently: Σdŷ per channel in the natural NCHW order (a different order: close, not
      // bit-equal) with the mask written out here.
      const BnReluBackwardRun fused = bn_relu_fused(in, dx0, Accumulate::overwrite, true);
      for (Index c = 0; c < geo.C; ++c) {
        double s = 0.0;
        for (Index n = 0; n < geo.N; ++n)
          for (Index j = 0; j < geo.HW; ++j) {
            const std::size_t o = std::size_t((n * geo.C + c) * geo.HW + j);
            if (in.y[o] > 0.0f) s += double(in.dr[o]);
          }
        CHECK(fused.sums[std::size_t(c)] == doctest::Approx(s).epsilon(1e-12));
      }
      // Negative control: one entry's mask flipped (y > 0 made negative, on the fused side only)
      // changes the sums, the input gradient and the stored dŷ.
      BnReluBackwardInput flipped = in;
      std::size_t f = 20;
      while (!(in.y[f] > 0.0f && in.dr[f] != 0.0f)) ++f;
      flipped.y[f] = -in.y[f];
      const BnReluBackwardRun two = bn_relu_two_kernels(in, dx0, Accumulate::overwrite);
      const BnReluBackwardRun bad = bn_relu_fused(flipped, dx0, Accumulate::overwrite, true);
      CHECK_FALSE(same_bits(two.sums, bad.sums));
      CHECK_FALSE(same_bits(two.dx, bad.dx));
      CHECK_FALSE(same_bits(two.dyhat, bad.dyhat));
      CHECK(bad.dyhat[f] == 0.0f);
    }
  }
}

TEST_CASE("kernel eval-mode BN backward with the fused ReLU equals ReLU backward then BN backward, bit for bit") {
  // The metrics' backward through the running statistics (BnPass::running) fuses the same way.
  const Index N = 4, C = 3, HW = 6, total = N * C * HW;
  std::vector<float> y(static_cast<std::size_t>(total)), dr(y.size()), g(y.size()), dx1(y.size()), dx2(y.size());
  for (std::size_t i = 0; i < y.size(); ++i) {
    y[i] = float(std::sin(0.9 * double(i)) - 0.2);
    dr[i] = float(std::cos(0.4 * double(i)) + 0.05);
  }
  y[5] = 0.0f;
  y[6] = std::numeric_limits<float>::quiet_NaN();
  const std::vector<float> rvar{0.4f, 1.1f, 0.2f}, gamma{1.2f, -0.8f, 0.5f};
  for (const float* gm : {static_cast<const float*>(nullptr), gamma.data()}) {
    launch_host(total, ReluBackward{y.data(), dr.data(), g.data(), Accumulate::overwrite});
    launch_host(total, BnEvalBackward{g.data(), rvar.data(), gm, dx1.data(), C, HW, 1e-3f, Accumulate::overwrite});
    launch_host(total, BnEvalBackward{dr.data(), rvar.data(), gm, dx2.data(), C, HW, 1e-3f, Accumulate::overwrite,
                                      y.data()});
    CHECK(same_bits(dx1, dx2));
    // Control: without the mask the fused body reads dr itself, which differs.
    launch_host(total, BnEvalBackward{dr.data(), rvar.data(), gm, dx2.data(), C, HW, 1e-3f, Accumulate::overwrite});
    CHECK_FALSE(same_bits(dx1, dx2));
  }
}

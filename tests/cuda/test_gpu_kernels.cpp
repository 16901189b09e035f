// The kernel bodies on the device (device launcher) against the same bodies on the host (host
// launcher, which the CPU suite checks against the reference). Each case: require_gpu_or_skip()
// first (exit 77 without a GPU: ctest reports skipped, never passed).
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "cuda/context.hpp"
#include "cuda/device_buffer.hpp"
#include "cuda/kernels/augment.hpp"
#include "cuda/kernels/batchnorm.hpp"
#include "cuda/kernels/elementwise.hpp"
#include "cuda/kernels/host_launch.hpp"
#include "cuda/kernels/launch.hpp"
#include "cuda/kernels/loss.hpp"
#include "cuda/kernels/optim.hpp"
#include "cuda/kernels/patches.hpp"
#include "cuda/kernels/pool.hpp"
#include "cuda/reductions.hpp"
#include "gpu_guard.hpp"
#include "kernel_test_util.hpp"

using namespace wdlab;
using namespace wdlab::cuda;
using namespace wdlab::cuda::kernels;
using namespace wdlab::cuda::testing;
using wdlab::cuda::testing::require_gpu_or_skip;

namespace {

template <class T>
DeviceBuffer<T> to_device(const std::vector<T>& v, const Context& ctx) {
  DeviceBuffer<T> b(v.size());
  b.copy_from_host(v, ctx.stream());
  return b;
}

template <class T>
std::vector<T> to_host(const DeviceBuffer<T>& b, const Context& ctx) {
  std::vector<T> v(b.size());
  b.copy_to_host(v, ctx.stream());
  return v;
}

std::vector<float> inputs(std::size_t n, std::uint64_t stream, double scale = 1.0) {
  return flat_f(normal_mat(Eigen::Index(n), 1, stream, scale));
}

}  // namespace

TEST_CASE("gpu: ReLU, max-pooling and KFC patches equal the host launcher exactly") {
  require_gpu_or_skip();
  Context ctx;
  const Index N = 3, C = 4, H = 9, W = 8;
  const auto x = inputs(std::size_t(N * C * H * W), 30);
  auto dx = to_device(x, ctx);
  {
    std::vector<float> yh(x.size());
    launch_host(Index(x.size()), ReluForward{x.data(), yh.data()});
    DeviceBuffer<float> yd(x.size());
    launch_device(ctx.stream(), Index(x.size()), ReluForward{dx.data(), yd.data()});
    WDLAB_EXPECT_PASS(compare_exact("gpu relu", to_d(to_host(yd, ctx)), to_d(yh)));
  }
  {
    const PoolShape s{C, H, W, (H - 3) / 2 + 1, (W - 3) / 2 + 1, 3, 2};
    const Index outs = N * C * s.P * s.Q;
    std::vector<float> yh(static_cast<std::size_t>(outs));
    std::vector<std::int32_t> ah(static_cast<std::size_t>(outs));
    launch_host(outs, MaxPoolForward{x.data(), yh.data(), ah.data(), s});
    DeviceBuffer<float> yd(static_cast<std::size_t>(outs));
    DeviceBuffer<std::int32_t> ad(static_cast<std::size_t>(outs));
    launch_device(ctx.stream(), outs, MaxPoolForward{dx.data(), yd.data(), ad.data(), s});
    WDLAB_EXPECT_PASS(compare_exact("gpu maxpool y", to_d(to_host(yd, ctx)), to_d(yh)));
    CHECK(to_host(ad, ctx) == ah);
  }
  {
    const ConvShape g{C, H, W, 3, 3, (H + 2 - 3) / 2 + 1, (W + 2 - 3) / 2 + 1, 1, 2};
    const Index rows = C * 9 + 1, n = rows * N * g.P * g.Q;
    std::vector<float> ah(static_cast<std::size_t>(n));
    launch_host(n, ConvPatches{x.data(), ah.data(), g, rows});
    DeviceBuffer<float> ad(static_cast<std::size_t>(n));
    launch_device(ctx.stream(), n, ConvPatches{dx.data(), ad.data(), g, rows});
    WDLAB_EXPECT_PASS(compare_exact("gpu patches", to_d(to_host(ad, ctx)), to_d(ah)));
  }
}

TEST_CASE("gpu: softmax cross-entropy, samplers and augmentation against the host launcher") {
  require_gpu_or_skip();
  Context ctx;
  const Index K = 10, N = 64;
  const auto z = inputs(std::size_t(K * N), 31, 3.0);
  std::vector<std::int32_t> labels(static_cast<std::size_t>(N));
  for (Index n = 0; n < N; ++n) labels[std::size_t(n)] = std::int32_t(n % K);
  std::vector<float> dzh(z.size());
  std::vector<double> lh(static_cast<std::size_t>(N)), ch(static_cast<std::size_t>(N));
  launch_host(N, SoftmaxCrossEntropy{z.data(), labels.data(), nullptr, dzh.data(), lh.data(), ch.data(), K, N});
  auto zd = to_device(z, ctx);
  auto labd = to_device(labels, ctx);
  DeviceBuffer<float> dzd(z.size());
  DeviceBuffer<double> ld(static_cast<std::size_t>(N)), cd(static_cast<std::size_t>(N));
  launch_device(ctx.stream(), N, SoftmaxCrossEntropy{zd.data(), labd.data(), nullptr, dzd.data(), ld.data(), cd.data(), K, N});
  WDLAB_EXPECT_PASS(compare_kernel("gpu ce dlogits", to_d(to_host(dzd, ctx)), to_d(dzh)));
  WDLAB_EXPECT_PASS(compare_kernel("gpu ce loss", to_host(ld, ctx), lh));
  CHECK(to_host(cd, ctx) == ch);

  std::vector<float> vh(z.size());
  std::vector<std::int32_t> th(static_cast<std::size_t>(N));
  launch_host(N, FisherCotangent{z.data(), vh.data(), th.data(), K, 77, 5});
  DeviceBuffer<float> vd(z.size());
  DeviceBuffer<std::int32_t> td(static_cast<std::size_t>(N));
  launch_device(ctx.stream(), N, FisherCotangent{zd.data(), vd.data(), td.data(), K, 77, 5});
  CHECK(to_host(td, ctx) == th);  // the same Philox draws pick the same targets
  WDLAB_EXPECT_PASS(compare_kernel("gpu fisher cotangent", to_d(to_host(vd, ctx)), to_d(vh)));

  std::vector<float> ph(z.size());
  launch_host(K * N, GaussianProbes{ph.data(), std::sqrt(2.0), 77, 5});
  DeviceBuffer<float> pd(z.size());
  launch_device(ctx.stream(), K * N, GaussianProbes{pd.data(), std::sqrt(2.0), 77, 5});
  WDLAB_EXPECT_PASS(compare_kernel("gpu gn probes", to_d(to_host(pd, ctx)), to_d(ph)));

  const Index C = 3, H = 32, W = 32;
  const auto img = inputs(std::size_t(N * C * H * W), 32);
  std::vector<std::int64_t> ids(static_cast<std::size_t>(N));
  for (Index n = 0; n < N; ++n) ids[std::size_t(n)] = 1000 + 7 * n;
  std::vector<float> oh(img.size());
  launch_host(N * C * H * W, AugmentCropFlip{img.data(), oh.data(), ids.data(), nullptr, 9, 3, C, H, W, 4});
  auto imgd = to_device(img, ctx);
  auto idsd = to_device(ids, ctx);
  DeviceBuffer<float> od(img.size());
  launch_device(ctx.stream(), N * C * H * W, AugmentCropFlip{imgd.data(), od.data(), idsd.data(), nullptr, 9, 3, C, H, W, 4});
  CHECK(to_host(od, ctx) == oh);  // bit for bit: a copy driven by the same Philox draws
}

TEST_CASE("gpu: SGD/Adam/Lion updates and deterministic reductions against the host launcher") {
  require_gpu_or_skip();
  Context ctx;
  const std::size_t n = 100003;
  const auto theta = inputs(n, 33), grad = inputs(n, 34);
  std::vector<float> th = theta, vh(n, 0.0f), mh(n, 0.0f);
  const std::uint32_t go = 0;
  launch_host(Index(n), SgdUpdate{th.data(), grad.data(), vh.data(), &go, 0.1f, 0.9f, 0.01f, Decay::l2, Momentum::nesterov});
  auto thd = to_device(theta, ctx);
  auto gd = to_device(grad, ctx);
  DeviceBuffer<float> vd(n);
  vd.fill_zero(ctx.stream());
  auto flag = to_device(std::vector<std::uint32_t>{0}, ctx);
  launch_device(ctx.stream(), Index(n), SgdUpdate{thd.data(), gd.data(), vd.data(), flag.data(), 0.1f, 0.9f, 0.01f, Decay::l2, Momentum::nesterov});
  WDLAB_EXPECT_PASS(compare_kernel("gpu sgd theta", to_d(to_host(thd, ctx)), to_d(th)));

  std::vector<float> ta = theta, ma(n, 0.0f), va(n, 0.0f);
  launch_host(Index(n), AdamUpdate{ta.data(), grad.data(), ma.data(), va.data(), &go, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.1f, 0.001f, 0.01f, Decay::wd});
  auto tad = to_device(theta, ctx);
  DeviceBuffer<float> mad(n), vad(n);
  mad.fill_zero(ctx.stream());
  vad.fill_zero(ctx.stream());
  launch_device(ctx.stream(), Index(n), AdamUpdate{tad.data(), gd.data(), mad.data(), vad.data(), flag.data(), 1e-3f, 0.9f, 0.999f, 1e-8f, 0.1f, 0.001f, 0.01f, Decay::wd});
  WDLAB_EXPECT_PASS(compare_kernel("gpu adam theta", to_d(to_host(tad, ctx)), to_d(ta)));

  std::vector<float> tl = theta, ml(n, 0.0f);
  for (int k = 0; k < 2; ++k)  // two steps: the second one's sign reads the momentum
    launch_host(Index(n), LionUpdate{tl.data(), grad.data(), ml.data(), &go, 1e-3f, 0.9f, 0.99f, 0.01f, Decay::wd});
  auto tld = to_device(theta, ctx);
  DeviceBuffer<float> mld(n);
  mld.fill_zero(ctx.stream());
  for (int k = 0; k < 2; ++k)
    launch_device(ctx.stream(), Index(n), LionUpdate{tld.data(), gd.data(), mld.data(), flag.data(), 1e-3f, 0.9f, 0.99f, 0.01f, Decay::wd});
  WDLAB_EXPECT_PASS(compare_kernel("gpu lion theta", to_d(to_host(tld, ctx)), to_d(tl)));
  WDLAB_EXPECT_PASS(compare_kernel("gpu lion m", to_d(to_host(mld, ctx)), to_d(ml)));

  // Channel sums (BN statistics, bias gradients) and flat statistics.
  const Index N = 16, C = 8, HW = 1000;
  const auto x = inputs(std::size_t(N * C * HW), 35);
  const Index chunks = channel_lanes(N * HW);
  std::vector<double> part(static_cast<std::size_t>(C * chunks)), sh(static_cast<std::size_t>(C));
  launch_host(C * chunks, ChannelPartialSums{x.data(), nullptr, nullptr, part.data(), C, HW, N * HW, chunks, ChannelTerm::value});
  launch_host(C, SumPartials{part.data(), sh.data(), chunks, 1.0});
  auto xd = to_device(x, ctx);
  DeviceBuffer<double> partd(std::size_t(std::max(channel_partials_needed(C, N * HW), flat_partials_needed(Index(x.size())))));
  DeviceBuffer<double> sd(static_cast<std::size_t>(C)), fd(3);
  channel_sums(ctx.stream(), xd.data(), nullptr, nullptr, N, C, HW, ChannelTerm::value, 1.0, sd.data(), partd.data());
  WDLAB_EXPECT_PASS(compare_kernel("gpu channel sums", to_host(sd, ctx), sh));
  flat_stats(ctx.stream(), xd.data(), Index(x.size()), fd.data(), Accumulate::overwrite, partd.data());
  double s2 = 0;
  for (const float v : x) s2 += double(v) * double(v);
  const auto f = to_host(fd, ctx);
  WDLAB_EXPECT_PASS(compare_kernel("gpu flat sum of squares", {f[1]}, {s2}));
  CHECK(f[2] == 0.0);
}

TEST_CASE("gpu: BN backward with the fused ReLU equals ReLU backward then BN backward on the device, bit for bit") {
  require_gpu_or_skip();
  Context ctx;
  const cudaStream_t s = ctx.stream();
  const Index N = 16, C = 8, HW = 250, total = N * C * HW;
  const auto y = inputs(std::size_t(total), 36), dr = inputs(std::size_t(total), 37), xh = inputs(std::size_t(total), 38);
  std::vector<double> invstd(static_cast<std::size_t>(C));
  for (Index c = 0; c < C; ++c) invstd[std::size_t(c)] = 0.5 + 0.25 * double(c);
  const std::vector<float> gamma{1.2f, -0.8f, 0.5f, 2.0f, 0.3f, -1.1f, 0.9f, 1.0f};
  auto yd = to_device(y, ctx), drd = to_device(dr, ctx), xd = to_device(xh, ctx), gd = to_device(gamma, ctx);
  auto isd = to_device(invstd, ctx);
  const auto n = static_cast<std::size_t>(total), c2 = static_cast<std::size_t>(2 * C);
  DeviceBuffer<double> partial(static_cast<std::size_t>(bn_relu_partials_needed(C, N * HW)));
  DeviceBuffer<double> sums2(c2), sums1(c2);
  DeviceBuffer<float> g(n), g1(n), dx2(n), dx1(n);
  // Two kernels: ReluBackward stores dŷ, two channel sums and BnBackward read it.
  launch_device(s, total, ReluBackward{yd.data(), drd.data(), g.data(), Accumulate::overwrite});
  channel_sums(s, g.data(), nullptr, nullptr, N, C, HW, ChannelTerm::value, 1.0, sums2.data(), partial.data());
  channel_sums(s, g.data(), xd.data(), nullptr, N, C, HW, ChannelTerm::product, 1.0, sums2.data() + C, partial.data());
  launch_device(s, total, BnBackward{g.data(), xd.data(), isd.data(), sums2.data(), sums2.data() + C, gd.data(), dx2.data(),
                                     C, HW, N * HW, Accumulate::overwrite});
  // Fused, storing dŷ as a capture does.
  bn_relu_backward_sums(s, drd.data(), yd.data(), xd.data(), g1.data(), N, C, HW, sums1.data(), partial.data());
  launch_device(s, total, BnBackward{drd.data(), xd.data(), isd.data(), sums1.data(), sums1.data() + C, gd.data(), dx1.data(),
                                     C, HW, N * HW, Accumulate::overwrite, yd.data()});
  CHECK(to_host(sums1, ctx) == to_host(sums2, ctx));
  CHECK(to_host(g1, ctx) == to_host(g, ctx));
  WDLAB_EXPECT_PASS(compare_exact("gpu fused BN+ReLU backward dx", to_d(to_host(dx1, ctx)), to_d(to_host(dx2, ctx))));
  // And the host launcher's fused run (the CPU suite's path) to the summation's rounding.
  const Index lanes = channel_lanes(N * HW);
  std::vector<double> ph(static_cast<std::size_t>(2 * C * lanes)), sh(static_cast<std::size_t>(2 * C));
  launch_host(C * lanes, BnReluPartialSums{dr.data(), y.data(), xh.data(), nullptr, ph.data(), C, HW, N * HW, lanes});
  launch_host(2 * C, SumPartials{ph.data(), sh.data(), lanes, 1.0});
  WDLAB_EXPECT_PASS(compare_kernel("gpu fused BN+ReLU sums vs host", to_host(sums1, ctx), sh));
}

// The reference backend's training step reuses its workspace: after the first steps, a float SGD
// step of the MLP and of the BN convnet allocates no large buffer (activations, cotangents,
// gradients, im2col patches), counted by a malloc hook in this test binary.
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "common/cpu_runtime.hpp"
#include "common/model_zoo.hpp"
#include "common/network_spec.hpp"
#include "reference/backend.hpp"
#include "reference/net/params.hpp"

// glibc's own allocator entry points, which the hooks below forward to.
extern "C" {
void* __libc_malloc(std::size_t);
void* __libc_calloc(std::size_t, std::size_t);
void* __libc_realloc(void*, std::size_t);
void* __libc_memalign(std::size_t, std::size_t);
}

namespace {

/// What the hooks saw while counting was on (process-wide by necessity: malloc is).
struct AllocCounter {
  std::atomic<bool> on{false};
  std::atomic<long> calls{0};
  std::atomic<long> bytes{0};
  std::atomic<long> largest{0};
  void note(std::size_t n) {
    if (!on.load(std::memory_order_relaxed)) return;
    ++calls;
    bytes += long(n);
    long l = largest.load();
    while (long(n) > l && !largest.compare_exchange_weak(l, long(n))) {
    }
  }
};

AllocCounter& counter() {
  static AllocCounter c;
  return c;
}

}  // namespace

// Every allocation of the process goes through these (operator new and Eigen call malloc).
// Not under AddressSanitizer: its runtime replaces malloc itself, and blocks from glibc's
// allocator would reach its free. There the test cases are skipped.
#if defined(__SANITIZE_ADDRESS__)
constexpr bool kMallocHooked = false;
#else
constexpr bool kMallocHooked = true;
extern "C" void* malloc(std::size_t n) {
  counter().note(n);
  return __libc_malloc(n);
}
extern "C" void* calloc(std::size_t k, std::size_t n) {
  counter().note(k * n);
  return __libc_calloc(k, n);
}
extern "C" void* realloc(void* p, std::size_t n) {
  counter().note(n);
  return __libc_realloc(p, n);
}
extern "C" void* aligned_alloc(std::size_t a, std::size_t n) {
  counter().note(n);
  return __libc_memalign(a, n);
}
extern "C" int posix_memalign(void** p, std::size_t a, std::size_t n) {
  counter().note(n);
  *p = __libc_memalign(a, n);
  return *p ? 0 : 12;  // ENOMEM
}
#endif

using namespace wdlab;

namespace {

struct StepAllocs {
  long calls = 0, bytes = 0, largest = 0;
};

/// Allocations of one call of f.
template <class F>
StepAllocs count_allocs(F&& f) {
  AllocCounter& c = counter();
  c.calls = 0;
  c.bytes = 0;
  c.largest = 0;
  c.on = true;
  f();
  c.on = false;
  return {c.calls.load(), c.bytes.load(), c.largest.load()};
}

/// A fixed batch of n examples of `spec`'s input shape, deterministic values in [−1, 1).
struct Batch {
  std::vector<float> images;
  std::vector<std::int32_t> labels;
  int n = 0;
  train::HostBatch host() const { return {images, labels, n}; }
};
Batch batch_for(const NetworkSpec& spec, int n) {
  Batch b;
  b.n = n;
  b.images.resize(std::size_t(spec.input.size()) * std::size_t(n));
  for (std::size_t i = 0; i < b.images.size(); ++i) b.images[i] = float((i * 7919) % 2000) / 1000.f - 1.f;
  for (int j = 0; j < n; ++j) b.labels.push_back(j % spec.classes);
  return b;
}

/// Steps 1–2 warm up (the workspace and the conv scratch grow to their size); steps 3–5 are
/// counted, and each must allocate no block over `max_block` bytes.
void check_steps(const NetworkSpec& spec, int n, long max_block) {
  const optim::OptimConfig oc{.kind = optim::OptimizerKind::sgd, .sgd = {.momentum = 0.9}};
  ref::ReferenceBackend<float> be(spec, ref::init_params<float>(spec, 1, ref::Init::glorot_uniform), oc, 1);
  const Batch b = batch_for(spec, n);
  const StepAllocs first = count_allocs([&] { be.train_step(b.host(), 1e-3, 0); });
  be.train_step(b.host(), 1e-3, 1);
  for (int k = 2; k < 5; ++k) {
    const StepAllocs a = count_allocs([&] { REQUIRE(be.train_step(b.host(), 1e-3, k).finite); });
    MESSAGE(fmt::format("{} batch {}: step {}: {} allocations, {} bytes, largest {} (first step: {} "
                        "allocations, {} bytes, largest {})",
                        spec.model, n, k, a.calls, a.bytes, a.largest, first.calls, first.bytes, first.largest));
    CHECK(a.largest <= max_block);
    CHECK(a.bytes * 50 < first.bytes);  // under 2 % of what the first step allocated
  }
}

}  // namespace

/// conv → BN → ReLU → conv → BN → ReLU → max-pool → conv (classes channels) → global average:
/// every GEMM is a conv pass's, run on parallel_for's threads with the BLAS on one thread.
NetworkSpec all_conv_spec() {
  SpecBuilder b("all-conv", Shape{1, 28, 28}, 10);
  b.affine = Affine::on;
  b.conv("c0", 8, 3, 1, 1, Bias::on);
  b.batchnorm("bn0");
  b.relu();
  b.conv("c1", 8, 3, 1, 1, Bias::on);
  b.batchnorm("bn1");
  b.relu();
  b.maxpool(2, 2);
  b.conv("c2", 10, 3, 1, 1, Bias::on);
  b.global_avgpool();
  return b.finish();
}

TEST_CASE("after warm-up a float SGD step allocates no activation, cotangent, gradient or patch buffer" *
          doctest::skip(!kMallocHooked)) {
  // The bound: the remaining allocations are the per-layer vectors of C entries (biases, BN's
  // γ/β and their gradients), the loss's classes × N matrices and the step's report; for these
  // shapes all under 16 KiB. An activation is ≥ 100 KiB here.
  constexpr long kMaxBlock = 16 << 10;
  set_cpu_threads(1);
  check_steps(zoo::mlp(Shape{196, 1, 1}, 10, {.depth = 2, .width = 200}), 128, kMaxBlock);
  check_steps(zoo::small_convnet(Shape{1, 28, 28}, 10, 8, {.affine = Affine::on}), 64, kMaxBlock);
  // Two threads: the conv passes' patch buffers live on the pool's threads, and the dense
  // layers' products are cut into pieces there (each a single-threaded BLAS call: OpenBLAS's own
  // threaded driver malloc'd a 512 KiB job table per call, measured by this hook).
  set_cpu_threads(2);
  check_steps(all_conv_spec(), 64, kMaxBlock);
  check_steps(zoo::mlp(Shape{196, 1, 1}, 10, {.depth = 2, .width = 200}), 128, kMaxBlock);
  set_cpu_threads(0);
}

TEST_CASE("the allocation count has teeth: the allocating forward/backward pass allocates activation-sized blocks" *
          doctest::skip(!kMallocHooked)) {
  set_cpu_threads(1);
  const NetworkSpec spec = zoo::mlp(Shape{196, 1, 1}, 10, {.depth = 2, .width = 200});
  const auto p = ref::init_params<float>(spec, 1, ref::Init::glorot_uniform);
  const Batch b = batch_for(spec, 128);
  const ref::Mat<float> x = Eigen::Map<const Eigen::MatrixXf>(b.images.data(), spec.input.size(), b.n);
  const ref::Mat<float> dlogits = ref::Mat<float>::Ones(spec.classes, b.n);
  (void)ref::network_backward(spec, p, ref::network_forward(spec, p, x, ref::BnMode::train), dlogits);
  const StepAllocs a = count_allocs([&] {
    const auto fw = ref::network_forward(spec, p, x, ref::BnMode::train);
    (void)ref::network_backward(spec, p, fw, dlogits);
  });
  MESSAGE(fmt::format("allocating pass: {} allocations, {} bytes, largest {}", a.calls, a.bytes, a.largest));
  CHECK(a.largest >= 200 * 128 * long(sizeof(float)));  // a hidden activation, 100 KiB
  // And the reusing pass of the same network, warmed up once, stays under the bound.
  ref::NetForward<float> fw;
  ref::NetBackward<float> bw;
  ref::network_forward(spec, p, x, ref::BnMode::train, fw);
  ref::network_backward(spec, p, fw, dlogits, ref::InputGrad::skip, bw);
  const StepAllocs r = count_allocs([&] {
    ref::network_forward(spec, p, x, ref::BnMode::train, fw);
    ref::network_backward(spec, p, fw, dlogits, ref::InputGrad::skip, bw);
  });
  MESSAGE(fmt::format("reusing pass: {} allocations, {} bytes", r.calls, r.bytes));
  CHECK(r.calls == 0);
  set_cpu_threads(0);
}

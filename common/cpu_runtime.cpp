#include "common/cpu_runtime.hpp"

#include <malloc.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <Eigen/Core>

#include "common/errors.hpp"
#include "common/parallel.hpp"

#if defined(WDLAB_HAVE_OPENBLAS)
// OpenBLAS's own entry points (declared here: Debian puts cblas.h in a per-variant folder).
extern "C" {
void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);
char* openblas_get_config(void);
char* openblas_get_corename(void);
}
#endif

namespace wdlab {

namespace {

/// The count set_cpu_threads chose: process-wide, like the BLAS's own setting it mirrors.
std::atomic<int>& thread_setting() {
  static std::atomic<int> n{1};
  return n;
}

/// Threads every loop pool of this process has started, together.
std::atomic<int>& pool_threads_started() {
  static std::atomic<int> n{0};
  return n;
}

/// The loops' thread pool, sized by the thread setting: one per process, like the BLAS's own
/// threads; rebuilt only when set_cpu_threads changes the count. A caller keeps the pool it got
/// alive for its call (shared_ptr), so a concurrent set_cpu_threads cannot pull it away.
struct LoopPoolSlot {
  std::mutex m;
  std::shared_ptr<ThreadPool> pool;
};

LoopPoolSlot& loop_pool_slot() {
  static LoopPoolSlot slot;
  return slot;
}

std::shared_ptr<ThreadPool> loop_pool() {
  LoopPoolSlot& slot = loop_pool_slot();
  const std::lock_guard<std::mutex> lock(slot.m);
  const int want = thread_setting().load();
  if (!slot.pool || slot.pool->size() != want) {
    slot.pool.reset();  // the old workers stop before the new ones start
    slot.pool = std::make_shared<ThreadPool>(want);
    pool_threads_started() += slot.pool->threads_started();
  }
  return slot.pool;
}

}  // namespace

int cpu_threads() { return thread_setting().load(); }

void parallel_for(int n, const std::function<void(int i, int worker)>& body) {
  const std::shared_ptr<ThreadPool> pool = loop_pool();
  if (std::min(n, pool->size()) <= 1) {
    for (int i = 0; i < n; ++i) body(i, 0);
    return;
  }
  pool->run(n, body);
}

void parallel_pieces(const std::vector<std::int64_t>& sizes, std::int64_t grain,
                     const std::function<void(int t, std::int64_t begin, std::int64_t end)>& body) {
  WDLAB_CHECK(grain > 0, "parallel_pieces: grain must be positive");
  std::int64_t total = 0, pieces = 0;
  for (const std::int64_t n : sizes) {
    total += n;
    pieces += (n + grain - 1) / grain;
  }
  if (total < 2 * grain) {
    for (int t = 0; t < int(sizes.size()); ++t)
      if (sizes[t] > 0) body(t, 0, sizes[t]);
    return;
  }
  parallel_for(int(pieces), [&](int i, int) {
    // Piece i: walk the arrays to the one that holds it (a handful of arrays, no table needed).
    std::int64_t left = i;
    for (int t = 0; t < int(sizes.size()); ++t) {
      const std::int64_t here = (sizes[t] + grain - 1) / grain;
      if (left < here) {
        const std::int64_t begin = left * grain;
        body(t, begin, std::min(sizes[t], begin + grain));
        return;
      }
      left -= here;
    }
  });
}

int parallel_threads_started() { return pool_threads_started().load(); }

void keep_freed_memory() {
  // 32 MB is glibc's largest mmap threshold on 64-bit; setting it also stops its dynamic growth.
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
}

int available_cores() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    const int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
  return 1;
}

int default_cpu_threads() {
  const char* env = std::getenv("WDLAB_THREADS");
  if (env == nullptr || *env == '\0') return available_cores();
  char* end = nullptr;
  const long n = std::strtol(env, &end, 10);
  if (*end != '\0' || n < 1 || n > 4096)
    throw UsageError("WDLAB_THREADS", std::string("expected a positive integer, got '") + env + "'");
  return int(n);
}

int set_cpu_threads(int n) {
  if (n < 0) throw UsageError("--threads", "expected 0 (every core) or a positive count, got " + std::to_string(n));
  const int t = n == 0 ? default_cpu_threads() : n;
#if defined(WDLAB_HAVE_OPENBLAS)
  // Every BLAS call runs on the calling thread; the engine cuts its large products itself
  // (ref::gemm), so one pool of t threads serves the products and the loops alike.
  openblas_set_num_threads(1);
#endif
  thread_setting().store(t);
  return t;
}

CpuRuntime cpu_runtime() {
  CpuRuntime r;
  r.cores = available_cores();
  if (const char* ct = std::getenv("OPENBLAS_CORETYPE")) r.coretype_env = ct;
#if defined(WDLAB_HAVE_OPENBLAS)
  r.blas = openblas_get_config();
  r.kernels = openblas_get_corename();
  r.threads = cpu_threads();
  r.blas_threads = openblas_get_num_threads();
#else
  r.blas = "none: Eigen's own products (built with -DWDLAB_BLAS=OFF)";
  r.kernels = std::string("Eigen ") + Eigen::SimdInstructionSetsInUse();
  r.threads = cpu_threads();
#endif
  return r;
}

}  // namespace wdlab

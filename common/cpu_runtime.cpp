#include "common/cpu_runtime.hpp"

#include <malloc.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <Eigen/Core>

#include "common/errors.hpp"

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

/// The BLAS on one thread for a scope, its count restored at the end.
class SingleThreadedBlas {
 public:
  SingleThreadedBlas() {
#if defined(WDLAB_HAVE_OPENBLAS)
    saved_ = openblas_get_num_threads();
    if (saved_ != 1) openblas_set_num_threads(1);
#endif
  }
  ~SingleThreadedBlas() {
#if defined(WDLAB_HAVE_OPENBLAS)
    if (saved_ != 1) openblas_set_num_threads(saved_);
#endif
  }
  SingleThreadedBlas(const SingleThreadedBlas&) = delete;
  SingleThreadedBlas& operator=(const SingleThreadedBlas&) = delete;

 private:
  int saved_ = 1;
};

}  // namespace

int cpu_threads() { return thread_setting().load(); }

void parallel_for(int n, const std::function<void(int i, int worker)>& body) {
  const int workers = std::min(n, cpu_threads());
  if (workers <= 1) {
    for (int i = 0; i < n; ++i) body(i, 0);
    return;
  }
  SingleThreadedBlas one_blas_thread;
  std::atomic<int> next{0};
  std::exception_ptr error;
  std::mutex error_mutex;
  auto run = [&](int worker) {
    for (int i = next.fetch_add(1); i < n; i = next.fetch_add(1)) {
      try {
        body(i, worker);
      } catch (...) {
        const std::lock_guard<std::mutex> lock(error_mutex);
        if (!error) error = std::current_exception();
        next.store(n);
      }
    }
  };
  std::vector<std::thread> pool;
  pool.reserve(std::size_t(workers - 1));
  for (int w = 1; w < workers; ++w) pool.emplace_back(run, w);
  run(0);
  for (auto& t : pool) t.join();
  if (error) std::rethrow_exception(error);
}

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
  openblas_set_num_threads(t);
  thread_setting().store(std::max(1, openblas_get_num_threads()));
#else
  thread_setting().store(t);
#endif
  return thread_setting().load();
}

CpuRuntime cpu_runtime() {
  CpuRuntime r;
  r.cores = available_cores();
  if (const char* ct = std::getenv("OPENBLAS_CORETYPE")) r.coretype_env = ct;
#if defined(WDLAB_HAVE_OPENBLAS)
  r.blas = openblas_get_config();
  r.kernels = openblas_get_corename();
  r.threads = openblas_get_num_threads();
#else
  r.blas = "none: Eigen's own products (built with -DWDLAB_BLAS=OFF)";
  r.kernels = std::string("Eigen ") + Eigen::SimdInstructionSetsInUse();
  r.threads = cpu_threads();
#endif
  return r;
}

}  // namespace wdlab

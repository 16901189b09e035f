#include "common/cpu_runtime.hpp"

#include <sched.h>

#include <cstdlib>
#include <string>

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
  return openblas_get_num_threads();
#else
  return t;
#endif
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
  r.threads = 1;
#endif
  return r;
}

}  // namespace wdlab

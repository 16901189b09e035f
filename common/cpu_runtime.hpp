#pragma once
// The CPU engine's run-time settings, shared by every command: which BLAS Eigen's matrix products
// go to (OpenBLAS chooses its kernels for the running CPU when it loads, so one portable binary
// gets each machine's GEMM speed), which kernel set it chose, and one thread count for the engine:
// its pool runs the elementwise loops and the pieces of its large products, each piece one
// single-threaded BLAS call (no second pool of BLAS threads competing for the cores).
#include <algorithm>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace wdlab {

struct CpuRuntime {
  std::string blas;     // "OpenBLAS 0.3.21 ..." or "none: Eigen's own products"
  std::string kernels;  // the BLAS kernel set (OpenBLAS core name), or Eigen's SIMD sets
  std::string coretype_env;  // OPENBLAS_CORETYPE as set in the environment ("" when unset)
  int threads = 1;      // the engine's threads (its products, cut by ref::gemm, and its loops)
  int blas_threads = 1; // threads inside one BLAS call: 1 (the engine's threads make the calls)
  int cores = 1;        // cores this process may run on (its affinity mask)
};

/// What the engine runs on now.
CpuRuntime cpu_runtime();

/// Cores this process may run on (sched_getaffinity; at least 1).
int available_cores();

/// The thread count a command uses when --threads is not given: WDLAB_THREADS from the
/// environment (a positive integer; anything else is a UsageError naming it), else every
/// available core.
int default_cpu_threads();

/// Sets the engine's thread count: n > 0 as given, 0 = default_cpu_threads(). Returns the count
/// set. parallel_for (the loops and ref::gemm's pieces) uses it; the BLAS is set to one thread.
int set_cpu_threads(int n);

/// The thread count set by the last set_cpu_threads (1 before any call).
int cpu_threads();

/// Runs body(i, worker) for every i in [0, n) on up to cpu_threads() threads (the calling one is
/// worker 0; worker < min(n, that count)). Each i runs
/// whole on one thread, so what body(i, ·) computes does not depend on the thread count. The
/// threads are a persistent pool (common/parallel.hpp), one per process, started when the count
/// is first used or changed and parked between calls. The first exception a body throws is
/// rethrown here after every thread has stopped. A parallel_for inside a body runs serially.
void parallel_for(int n, const std::function<void(int i, int worker)>& body);

/// Elementwise work over several arrays, sizes[t] entries in array t: runs body(t, begin, end) on
/// pieces of at most `grain` consecutive entries of one array, spread over parallel_for's threads
/// (serially, on the caller, when all arrays together hold fewer than 2·grain entries: waking the
/// threads would cost more than the work). Every entry is in exactly one piece and the pieces
/// depend on the sizes and the grain only, so a body that computes each entry on its own gives the
/// same bits on any thread count.
void parallel_pieces(const std::vector<std::int64_t>& sizes, std::int64_t grain,
                     const std::function<void(int t, std::int64_t begin, std::int64_t end)>& body);

/// parallel_pieces for one array of n entries: body(begin, end). A template so that the serial case
/// (n < 2·grain, most layers of a small network) calls body directly, with no std::function built
/// and nothing allocated.
template <class F>
void parallel_range(std::int64_t n, std::int64_t grain, F&& body) {
  if (n < 2 * grain) {
    if (n > 0) body(std::int64_t(0), n);
    return;
  }
  parallel_for(int((n + grain - 1) / grain), [&](int i, int) {
    const std::int64_t begin = std::int64_t(i) * grain;
    body(begin, std::min(n, begin + grain));
  });
}

/// Threads parallel_for's pools have started in this process so far (a pool of t threads
/// starts t − 1; calls start none).
int parallel_threads_started();

/// Keeps freed memory in the process (glibc: no mmap for blocks under 32 MB, no trimming), so the
/// large matrices a training step allocates again every step reuse pages instead of faulting in
/// fresh zeroed ones (measured: the kernel's page clearing took 9 % of a BN convnet step).
void keep_freed_memory();

}  // namespace wdlab

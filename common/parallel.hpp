#pragma once
// A persistent pool of worker threads for the CPU engine's own loops (parallel_for in
// cpu_runtime.hpp): the threads start once, park on a condition variable between calls, and each
// call hands them one index range. Which thread runs which index is scheduling; what an index
// computes is not, so callers whose body(i, ·) depends on i only get the same results on any
// thread count.
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace wdlab {

class ThreadPool {
 public:
  /// A pool for `threads` threads in all: the caller of run() is worker 0, threads − 1 workers
  /// start here and wait.
  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  /// Threads a call uses at most (the caller included).
  int size() const { return int(workers_.size()) + 1; }

  /// Runs body(i, worker) for every i in [0, n) with worker < min(n, size()), each i whole on one
  /// thread, and returns when all are done; the first exception a body throws stops the handing out of indices and is
  /// rethrown here. A call from inside a body (or while another thread's call runs) runs its
  /// indices in order on the calling thread, as worker 0.
  void run(int n, const std::function<void(int i, int worker)>& body);

  /// Threads this pool has started (threads − 1; it never starts more).
  int threads_started() const { return started_; }

 private:
  void worker_loop(int worker);
  void claim_indices(int worker);

  std::vector<std::thread> workers_;
  int started_ = 0;
  std::mutex call_mutex_;  // one call at a time; others run serially
  std::mutex m_;
  std::condition_variable wake_, done_;
  std::uint64_t generation_ = 0;  // bumped per call: the workers' signal to start
  bool stop_ = false;
  int busy_ = 0;  // workers still inside the current call
  // The current call (valid while generation_ is current and busy_ > 0):
  const std::function<void(int, int)>* body_ = nullptr;
  int n_ = 0, next_ = 0, active_ = 0;  // active_: workers 0 .. active_ − 1 take indices
  std::exception_ptr error_;
};

}  // namespace wdlab

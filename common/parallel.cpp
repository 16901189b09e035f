#include "common/parallel.hpp"

#include <algorithm>

namespace wdlab {

namespace {

/// True on a thread while it runs a body for a pool: a nested run() stays on that thread.
bool& inside_pool_body() {
  thread_local bool inside = false;
  return inside;
}

class InsideBody {
 public:
  InsideBody() : saved_(inside_pool_body()) { inside_pool_body() = true; }
  ~InsideBody() { inside_pool_body() = saved_; }
  InsideBody(const InsideBody&) = delete;
  InsideBody& operator=(const InsideBody&) = delete;

 private:
  bool saved_;
};

}  // namespace

ThreadPool::ThreadPool(int threads) {
  const int extra = threads > 1 ? threads - 1 : 0;
  workers_.reserve(std::size_t(extra));
  for (int w = 1; w <= extra; ++w) {
    workers_.emplace_back([this, w] { worker_loop(w); });
    ++started_;
  }
}

ThreadPool::~ThreadPool() {
  {
    const std::lock_guard<std::mutex> lock(m_);
    stop_ = true;
  }
  wake_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::claim_indices(int worker) {
  // Indices are handed out one at a time under the lock: calls have tens of indices, each
  // milliseconds of work, so the lock costs nothing measurable and a descheduled thread holds
  // back one index at most.
  std::unique_lock<std::mutex> lock(m_);
  while (next_ < n_) {
    const int i = next_++;
    lock.unlock();
    try {
      const InsideBody mark;
      (*body_)(i, worker);
      lock.lock();
    } catch (...) {
      lock.lock();
      if (!error_) error_ = std::current_exception();
      next_ = n_;  // hand out nothing more
    }
  }
}

void ThreadPool::worker_loop(int worker) {
  std::uint64_t seen = 0;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(m_);
      wake_.wait(lock, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
    }
    if (worker < active_) claim_indices(worker);  // workers at or above min(n, size) stay out
    {
      const std::lock_guard<std::mutex> lock(m_);
      --busy_;
    }
    done_.notify_one();
  }
}

void ThreadPool::run(int n, const std::function<void(int i, int worker)>& body) {
  std::unique_lock<std::mutex> call(call_mutex_, std::defer_lock);
  if (n <= 1 || workers_.empty() || inside_pool_body() || !call.try_lock()) {
    for (int i = 0; i < n; ++i) body(i, 0);
    return;
  }
  {
    const std::lock_guard<std::mutex> lock(m_);
    body_ = &body;
    n_ = n;
    next_ = 0;
    error_ = nullptr;
    active_ = std::min(n, size());
    busy_ = int(workers_.size());
    ++generation_;
  }
  wake_.notify_all();
  claim_indices(0);
  std::exception_ptr error;
  {
    std::unique_lock<std::mutex> lock(m_);
    done_.wait(lock, [&] { return busy_ == 0; });
    body_ = nullptr;
    error = error_;
    error_ = nullptr;
  }
  if (error) std::rethrow_exception(error);
}

}  // namespace wdlab

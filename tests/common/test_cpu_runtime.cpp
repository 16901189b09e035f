// parallel_for (common/cpu_runtime.hpp): every index once, on at most the set thread count, on
// threads of one persistent pool (no thread started per call), and a body's exception reaches
// the caller.
#include <doctest/doctest.h>

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>
#include <vector>

#include "common/cpu_runtime.hpp"

using namespace wdlab;

TEST_CASE("parallel_for runs every index once, on workers below the thread count") {
  for (const int threads : {1, 2, 3}) {
    CAPTURE(threads);
    const int set = set_cpu_threads(threads);  // the BLAS may cap it
    REQUIRE(set >= 1);
    REQUIRE(cpu_threads() == set);
    std::vector<std::atomic<int>> seen(50);
    std::mutex m;
    std::set<std::thread::id> ids;
    std::set<int> workers;
    parallel_for(50, [&](int i, int worker) {
      seen[std::size_t(i)].fetch_add(1);
      const std::lock_guard<std::mutex> lock(m);
      ids.insert(std::this_thread::get_id());
      workers.insert(worker);
    });
    for (auto& s : seen) CHECK(s.load() == 1);
    CHECK(ids.size() <= std::size_t(set));
    CHECK(ids.size() == workers.size());
    CHECK(*workers.rbegin() < set);  // worker numbers name threads below the count
    // (Which workers get indices depends on scheduling: on a busy machine the spawned worker may
    // take all 50 before the calling thread, worker 0, asks for one.)
  }
  // Fewer indices than threads: no idle workers, nothing run twice; n = 0 runs nothing.
  REQUIRE(set_cpu_threads(3) >= 2);
  std::atomic<int> calls{0};
  parallel_for(2, [&](int, int worker) {
    CHECK(worker < 2);
    ++calls;
  });
  CHECK(calls.load() == 2);
  parallel_for(0, [&](int, int) { ++calls; });
  CHECK(calls.load() == 2);
  set_cpu_threads(0);
}

TEST_CASE("parallel_for rethrows a body's exception after the other threads stop") {
  REQUIRE(set_cpu_threads(2) == 2);
  std::atomic<int> ran{0};
  CHECK_THROWS_AS(parallel_for(100,
                               [&](int i, int) {
                                 ++ran;
                                 if (i == 3) throw std::runtime_error("index 3");
                               }),
                  std::runtime_error);
  CHECK(ran.load() >= 4);  // indices 0..3 at least
  set_cpu_threads(0);
  // The control: without a throwing index the same call returns normally.
  CHECK_NOTHROW(parallel_for(100, [&](int, int) { ++ran; }));
}

namespace {

/// The kernel's id of the calling thread: new threads get new ids (std::thread::id values are
/// reused after a join, so they could not tell a fresh thread from a reused one).
long kernel_tid() { return long(gettid()); }

/// Both indices of a two-index call wait (up to a second) until both have started, so that on a
/// busy machine the second thread still gets one.
struct Rendezvous {
  std::atomic<int> arrived{0};
  void meet() {
    ++arrived;
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(1);
    while (arrived.load() < 2 && std::chrono::steady_clock::now() < until) std::this_thread::yield();
  }
};

}  // namespace

TEST_CASE("parallel_for reuses one pool: no thread started per call, the same worker threads") {
  REQUIRE(set_cpu_threads(2) == 2);
  parallel_for(2, [](int, int) {});  // the pool for two threads exists from here on
  const int started = parallel_threads_started();
  const long caller = kernel_tid();
  std::mutex m;
  std::set<long> worker_tids;  // threads that ran worker 1
  int calls_with_worker1 = 0;
  for (int call = 0; call < 20; ++call) {
    Rendezvous r;
    bool worker1 = false;
    parallel_for(2, [&](int, int worker) {
      r.meet();
      const std::lock_guard<std::mutex> lock(m);
      if (worker == 1) {
        worker_tids.insert(kernel_tid());
        worker1 = true;
      } else {
        CHECK(kernel_tid() == caller);  // worker 0 is the calling thread
      }
    });
    calls_with_worker1 += worker1 ? 1 : 0;
  }
  CHECK(parallel_threads_started() == started);  // 20 calls, no thread started
  CHECK(calls_with_worker1 > 0);                 // the worker thread did run indices
  CHECK(worker_tids.size() == 1);                // always the same one
  CHECK(worker_tids.count(caller) == 0);         // and not the calling thread
  // The control: a new count builds a new pool, and the counter sees its threads start.
  REQUIRE(set_cpu_threads(3) == 3);
  parallel_for(3, [](int, int) {});
  CHECK(parallel_threads_started() == started + 2);
  set_cpu_threads(0);
}

TEST_CASE("parallel_for's pool survives a body's exception and a nested call runs serially") {
  REQUIRE(set_cpu_threads(2) == 2);
  parallel_for(2, [](int, int) {});
  const int started = parallel_threads_started();
  CHECK_THROWS_WITH_AS(parallel_for(2,
                                    [](int i, int) {
                                      if (i == 1) throw std::invalid_argument("index 1 failed");
                                    }),
                       "index 1 failed", std::invalid_argument);
  std::atomic<int> ran{0};
  std::atomic<int> nested_nonzero_worker{0};
  parallel_for(4, [&](int, int) {
    ++ran;
    parallel_for(3, [&](int, int worker) {  // inside a body: on this thread, as worker 0
      ++ran;
      if (worker != 0) ++nested_nonzero_worker;
    });
  });
  CHECK(ran.load() == 4 + 4 * 3);
  CHECK(nested_nonzero_worker.load() == 0);
  CHECK(parallel_threads_started() == started);
  set_cpu_threads(0);
}

TEST_CASE("parallel_pieces covers every entry of every array once, in pieces of at most the grain") {
  // Arrays of 0, 1, grain − 1, grain, grain + 1 and 5·grain + 3 entries: every boundary case of the cut.
  const std::int64_t grain = 64;
  const std::vector<std::int64_t> sizes = {0, 1, grain - 1, grain, grain + 1, 5 * grain + 3};
  for (const int threads : {1, 2}) {
    CAPTURE(threads);
    REQUIRE(set_cpu_threads(threads) >= 1);
    std::vector<std::vector<std::atomic<int>>> seen;
    for (const std::int64_t n : sizes) seen.emplace_back(std::size_t(n));
    std::atomic<int> pieces{0}, too_long{0};
    parallel_pieces(sizes, grain, [&](int t, std::int64_t b, std::int64_t e) {
      ++pieces;
      if (e - b > grain || b >= e) ++too_long;
      for (std::int64_t j = b; j < e; ++j) seen[std::size_t(t)][std::size_t(j)].fetch_add(1);
    });
    for (auto& a : seen)
      for (auto& s : a) CHECK(s.load() == 1);
    CHECK(too_long.load() == 0);
    CHECK(pieces.load() == 0 + 1 + 1 + 1 + 2 + 6);
  }
  // Below 2·grain entries in all, the caller runs one piece per array (no thread woken).
  std::set<std::thread::id> ids;
  std::mutex m;
  int small_pieces = 0;
  parallel_pieces({10, 20}, grain, [&](int, std::int64_t, std::int64_t) {
    const std::lock_guard<std::mutex> lock(m);
    ids.insert(std::this_thread::get_id());
    ++small_pieces;
  });
  CHECK(small_pieces == 2);
  CHECK(ids == std::set<std::thread::id>{std::this_thread::get_id()});
  CHECK_THROWS(parallel_pieces({10}, 0, [](int, std::int64_t, std::int64_t) {}));
  set_cpu_threads(0);
}

TEST_CASE("parallel_range covers 0 to n once in pieces of at most the grain, serially below 2·grain") {
  REQUIRE(set_cpu_threads(2) >= 1);
  for (const std::int64_t n : {std::int64_t(0), std::int64_t(1), std::int64_t(127), std::int64_t(128),
                               std::int64_t(129), std::int64_t(1000)}) {
    CAPTURE(n);
    std::vector<std::atomic<int>> seen(static_cast<std::size_t>(n));
    std::atomic<int> pieces{0}, bad{0};
    parallel_range(n, 64, [&](std::int64_t b, std::int64_t e) {
      ++pieces;
      if (e - b > 64 && n >= 128) ++bad;  // pieces respect the grain once the range is cut
      if (b >= e) ++bad;
      for (std::int64_t j = b; j < e; ++j) seen[std::size_t(j)].fetch_add(1);
    });
    for (auto& s : seen) CHECK(s.load() == 1);
    CHECK(bad.load() == 0);
    CHECK(pieces.load() == (n == 0 ? 0 : n < 128 ? 1 : int((n + 63) / 64)));
  }
  set_cpu_threads(0);
}

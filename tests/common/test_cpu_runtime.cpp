// parallel_for (common/cpu_runtime.hpp): every index once, on at most the set thread count, and
// a body's exception reaches the caller.
#include <doctest/doctest.h>

#include <atomic>
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

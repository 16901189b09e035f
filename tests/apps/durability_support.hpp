#pragma once
// Support for the durability tests: tiny runs as child processes that can be killed at random
// times, and comparisons of two finished runs (state bit for bit, metrics rows but for timings).
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "common/io/safetensors.hpp"
#include "common/train/metrics_log.hpp"

namespace wdlab::test {

namespace fs = std::filesystem;

/// A `wdlab` child process (argv split on spaces; output discarded).
class Child {
 public:
  Child(const std::string& args, const std::vector<std::string>& env = {}) {
    std::vector<std::string> argv{WDLAB_BIN};
    for (std::size_t i = 0; i < args.size();) {
      const std::size_t j = args.find(' ', i);
      const std::string a = args.substr(i, j == std::string::npos ? std::string::npos : j - i);
      if (!a.empty()) argv.push_back(a);
      if (j == std::string::npos) break;
      i = j + 1;
    }
    pid_ = ::fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
      for (const auto& e : env) ::putenv(const_cast<char*>(e.c_str()));
      std::freopen("/dev/null", "w", stdout);
      std::freopen("/dev/null", "w", stderr);
      std::vector<char*> cargv;
      for (auto& a : argv) cargv.push_back(a.data());
      cargv.push_back(nullptr);
      ::execv(cargv[0], cargv.data());
      ::_exit(127);
    }
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  ~Child() {
    if (pid_ > 0 && !reaped_) {
      ::kill(pid_, SIGKILL);
      wait();
    }
  }
  void signal(int sig) const { ::kill(pid_, sig); }
  /// Exit status as a shell reports it (128+signal when killed).
  int wait() {
    int status = 0;
    ::waitpid(pid_, &status, 0);
    reaped_ = true;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  /// Whether it has exited within `timeout` (then wait() returns at once).
  bool exited_within(std::chrono::milliseconds timeout) {
    const auto end = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < end) {
      int status = 0;
      const pid_t r = ::waitpid(pid_, &status, WNOHANG);
      if (r == pid_) {
        reaped_ = true;
        status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        return true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return false;
  }
  int status() const { return status_; }

 private:
  pid_t pid_ = -1;
  bool reaped_ = false;
  int status_ = -1;
};

/// Epoch rows and event rows of a run, without the wall-clock fields.
inline std::vector<nlohmann::ordered_json> comparable_rows(const fs::path& run) {
  auto rows = train::MetricsLog(run).rows();
  for (auto& r : rows)
    for (const char* k : {"epoch_seconds", "seconds"}) r.erase(k);
  return rows;
}

/// The finished runs `a` and `b` agree: every tensor of the final checkpoint bit for bit, every
/// metrics row. Returns the number of tensors compared.
inline int expect_same_run(const fs::path& a, const fs::path& b, const std::string& final_name) {
  const auto fa = io::load(a / "checkpoints" / final_name);
  const auto fb = io::load(b / "checkpoints" / final_name);
  CHECK(fa.tensors.size() == fb.tensors.size());
  int same = 0;
  for (const auto& [name, t] : fa.tensors) {
    INFO("tensor " << name);
    REQUIRE(fb.tensors.count(name) == 1);
    const bool eq = t.data == fb.tensors.at(name).data;
    CHECK(eq);
    same += eq;
  }
  const auto ra = comparable_rows(a), rb = comparable_rows(b);
  CHECK(ra.size() == rb.size());
  for (std::size_t i = 0; i < std::min(ra.size(), rb.size()); ++i) {
    INFO("metrics row " << i << ": " << ra[i].dump() << " vs " << rb[i].dump());
    CHECK(ra[i] == rb[i]);
  }
  for (const fs::path& d : {b, b / "checkpoints"})
    for (const auto& e : fs::directory_iterator(d)) {
      INFO("left in " << d << ": " << e.path().filename());
      CHECK(e.path().filename().string().find(".tmp.") == std::string::npos);
    }
  return same;
}

}  // namespace wdlab::test

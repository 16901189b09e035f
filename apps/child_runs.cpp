#include "apps/child_runs.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <map>
#include <thread>

#include <fmt/format.h>

#include "common/cpu_runtime.hpp"
#include "common/errors.hpp"
#include "common/train/signals.hpp"

extern char** environ;

namespace fs = std::filesystem;

namespace wdlab::app {

fs::path self_executable() {
  std::error_code ec;
  const fs::path p = fs::read_symlink("/proc/self/exe", ec);
  if (ec) throw InternalError("cannot resolve /proc/self/exe: " + ec.message());
  return p;
}

namespace {

using Clock = std::chrono::steady_clock;

/// This process's environment with WDLAB_THREADS=threads (the child's default for --threads).
std::vector<std::string> child_environment(int threads) {
  std::vector<std::string> env;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e)
    if (std::strncmp(*e, "WDLAB_THREADS=", 14) != 0) env.emplace_back(*e);
  env.push_back("WDLAB_THREADS=" + std::to_string(threads));
  return env;
}

/// fork + exec of `exe args...` in a new process group, output appended to `log`, with
/// WDLAB_THREADS=threads in its environment.
pid_t spawn(const fs::path& exe, const ChildJob& job, int threads) {
  fs::create_directories(job.log.parent_path());
  const int fd = ::open(job.log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) throw DataError(job.log.string(), std::string("cannot open the log: ") + std::strerror(errno));
  std::vector<std::string> argv_s;
  argv_s.push_back("wdlab");
  argv_s.insert(argv_s.end(), job.args.begin(), job.args.end());
  std::vector<char*> argv;
  for (auto& s : argv_s) argv.push_back(s.data());
  argv.push_back(nullptr);
  // Built before fork: the parent has BLAS threads, so the child may only call async-signal-safe
  // functions until exec.
  std::vector<std::string> env_s = child_environment(threads);
  std::vector<char*> envp;
  for (auto& s : env_s) envp.push_back(s.data());
  envp.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) {
    ::close(fd);
    throw InternalError(std::string("fork failed: ") + std::strerror(errno));
  }
  if (pid == 0) {
    // Own process group: a terminal's Ctrl-C reaches only the parent, which forwards it once
    // (a second SIGINT would make the trainer exit without its checkpoint).
    ::setpgid(0, 0);
    ::dup2(fd, STDOUT_FILENO);
    ::dup2(fd, STDERR_FILENO);
    const int devnull = ::open("/dev/null", O_RDONLY);
    if (devnull >= 0) ::dup2(devnull, STDIN_FILENO);
    struct sigaction sa {};
    sa.sa_handler = SIG_DFL;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
    ::execve(exe.c_str(), argv.data(), envp.data());
    const std::string msg = fmt::format("wdlab: exec {} failed: {}\n", exe.string(), std::strerror(errno));
    [[maybe_unused]] auto n = ::write(STDERR_FILENO, msg.data(), msg.size());
    ::_exit(127);
  }
  ::close(fd);
  return pid;
}

}  // namespace

std::vector<JobResult> run_child_jobs(const std::vector<ChildJob>& jobs, int parallel, const std::string& tag,
                                      const std::function<void(std::size_t, const JobResult&)>& on_done) {
  if (parallel < 1) throw UsageError("-j", "must be >= 1");
  // The cores are divided between the children instead of each taking all of them: N children
  // with every core each would oversubscribe the machine N times over.
  const int child_threads = std::max(1, cpu_runtime().threads / parallel);
  // /proc/self/exe itself, not the path it resolves to: it still runs this binary when a rebuild
  // has replaced the file meanwhile.
  const fs::path exe = "/proc/self/exe";
  std::map<std::string, std::size_t> index;
  for (std::size_t i = 0; i < jobs.size(); ++i) index[jobs[i].id] = i;
  for (const auto& j : jobs)
    for (const auto& a : j.after)
      if (!index.count(a)) throw UsageError(j.id, fmt::format("waits for '{}', which is not a job", a));

  std::vector<JobResult> results(jobs.size());
  std::map<pid_t, std::pair<std::size_t, Clock::time_point>> running;
  train::SignalGuard guard;
  int forwarded = 0;
  std::size_t finished = 0;

  auto ready = [&](std::size_t i, bool& blocked) {
    blocked = false;
    for (const auto& a : jobs[i].after) {
      const auto& r = results[index[a]];
      if (r.outcome == JobOutcome::not_run) return false;
      if (r.outcome != JobOutcome::ok) blocked = true;
    }
    return true;
  };
  std::vector<bool> started(jobs.size(), false);
  while (finished < jobs.size()) {
    if (guard.pending() && forwarded == 0) {
      forwarded = guard.pending();
      fmt::print(stderr, "{}: signal {}: asking {} running run(s) to checkpoint and stop\n", tag, forwarded,
                 running.size());
      for (const auto& [pid, _] : running) ::kill(pid, SIGINT);
    }
    if (!forwarded) {
      for (std::size_t i = 0; i < jobs.size() && int(running.size()) < parallel; ++i) {
        if (started[i]) continue;
        bool blocked = false;
        if (!ready(i, blocked)) continue;
        started[i] = true;
        if (jobs[i].args.empty() || blocked) {  // no args: finished before, nothing to run
          results[i].outcome = jobs[i].args.empty() ? JobOutcome::ok : JobOutcome::skipped_dependency;
          ++finished;
          on_done(i, results[i]);
          continue;
        }
        fmt::print(stderr, "{}: start {} {}\n", tag, jobs[i].id, jobs[i].label);
        running[spawn(exe, jobs[i], child_threads)] = {i, Clock::now()};
      }
    }
    if (running.empty()) {
      if (forwarded) break;
      bool any_waiting = false;
      for (std::size_t i = 0; i < jobs.size(); ++i) any_waiting |= !started[i];
      if (!any_waiting) break;
      throw InternalError(tag + ": jobs wait for each other (a cycle in 'after')");
    }
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid <= 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      continue;
    }
    auto it = running.find(pid);
    if (it == running.end()) continue;
    const auto [i, t0] = it->second;
    running.erase(it);
    JobResult& r = results[i];
    r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    r.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    r.outcome = r.exit_code == 0 ? JobOutcome::ok
                : (r.exit_code == 128 + SIGINT || r.exit_code == 128 + SIGTERM) ? JobOutcome::interrupted
                                                                              : JobOutcome::failed;
    ++finished;
    on_done(i, r);
  }
  if (forwarded) throw train::Interrupted{forwarded};
  return results;
}

}  // namespace wdlab::app

#pragma once
// Runs `wdlab train` children for `wdlab sweep` and `wdlab reproduce`: fork/exec of this same
// binary (/proc/self/exe), at most N at a time, each in its own process group with stdout and
// stderr appended to its log file. A job whose `after` jobs have not finished successfully waits
// (and is skipped when one of them failed). SIGINT/SIGTERM to the parent is forwarded once to every
// running child, which checkpoints and exits 130/143; the parent then waits for them and throws
// train::Interrupted, so every interrupted run can continue with `train --resume`.
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

namespace wdlab::app {

struct ChildJob {
  std::string id;                  // for progress lines and `after`
  std::string label;               // what the progress line shows after the id
  std::vector<std::string> args;   // after the program name, e.g. {"train", ...}; empty: done before
  std::filesystem::path log;       // stdout+stderr, appended
  std::vector<std::string> after;  // ids that must finish with exit 0 first
};

enum class JobOutcome { not_run, ok, failed, interrupted, skipped_dependency };

struct JobResult {
  JobOutcome outcome = JobOutcome::not_run;
  int exit_code = -1;  // the child's exit status (128+signal when killed)
  double seconds = 0;
};

/// Runs `jobs` with at most `parallel` children at once; `on_done(i, result)` is called in the
/// parent as each job ends (for progress lines). Throws train::Interrupted after forwarding a
/// signal and reaping the children.
std::vector<JobResult> run_child_jobs(const std::vector<ChildJob>& jobs, int parallel,
                                      const std::string& tag,
                                      const std::function<void(std::size_t, const JobResult&)>& on_done);

/// The path of this executable (/proc/self/exe resolved), for child processes and Slurm scripts.
std::filesystem::path self_executable();

}  // namespace wdlab::app

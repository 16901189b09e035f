#pragma once
// `wdlab sweep` as a function, so `wdlab reproduce` runs the grids of a suite the same way.
#include <filesystem>
#include <string>

namespace wdlab::app {

struct SweepOptions {
  std::filesystem::path grid;
  std::filesystem::path out;         // default runs/sweeps/<grid name>
  int jobs = 1;                      // children at once
  std::filesystem::path emit_slurm;  // write a job-array script instead of running
  bool dry_run = false;              // print the manifest's points, write nothing
  bool retry_failed = false;         // run again the points that failed (e.g. diverged) before
  void validate() const;
};

/// Expands, runs (skipping finished points, resuming interrupted ones), selects the best point by
/// held-out validation at the final epoch and retrains it on train+validation. Returns the exit
/// code: 0, or 4 when no point finished. Throws train::Interrupted on SIGINT/SIGTERM.
int run_sweep(const SweepOptions& o);

}  // namespace wdlab::app

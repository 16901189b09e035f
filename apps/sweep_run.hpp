#pragma once
// `wdlab sweep` as a function, so `wdlab reproduce` runs the grids of a suite the same way.
#include <filesystem>
#include <string>

#include "apps/sweep_slurm.hpp"

namespace wdlab::app {

struct SweepOptions {
  std::filesystem::path grid;
  std::filesystem::path out;         // default runs/sweeps/<grid name>
  int jobs = 1;                      // children at once
  std::filesystem::path emit_slurm;  // write a job-array script (and its submit helper) instead of running
  SlurmOptions slurm;                // passthrough #SBATCH options, only with emit_slurm
  bool collect = false;              // run no point: select among finished ones and retrain (after Slurm)
  bool dry_run = false;              // print the manifest's points, write nothing
  bool retry_failed = false;         // run again the points that failed (e.g. diverged) before
  void validate() const;
};

/// Expands, runs (skipping finished points, resuming interrupted ones), selects the best point by
/// held-out validation at the final epoch and retrains it on train+validation. Returns the exit
/// code: 0, or 4 when no point finished. Throws train::Interrupted on SIGINT/SIGTERM.
/// With `collect` it runs no grid point and throws PreconditionError (exit 5) while a point is
/// neither done nor failed (a Slurm task cancelled or out of time), naming them.
int run_sweep(const SweepOptions& o);

}  // namespace wdlab::app

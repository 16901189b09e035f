#pragma once
// `wdlab sweep --emit-slurm FILE`: a Slurm job array (one task per grid point) and its
// submit-and-collect helper FILE's stem + "-submit.sh".
//
// Resources per array task: `--cpus-per-task=N` from `wdlab sweep --threads N` (default 1), and
// each task trains with `--threads $SLURM_CPUS_PER_TASK` (the BLAS behind the reference engine's
// products; the CUDA backend drives its GPU from one thread); `--gres=gpu:1` only for backend
// cuda, from the points' resolved configs. A grid that mixes backends is refused (one array asks
// one set of resources).
// `--partition/--time/--account` are passed through as #SBATCH lines.
#include <filesystem>
#include <string>
#include <vector>

#include "apps/sweep_grid.hpp"

namespace wdlab::app {

struct SlurmOptions {
  std::string partition;  // #SBATCH --partition, when set
  std::string time;       // #SBATCH --time (Slurm's formats: minutes, [D-]HH:MM[:SS], MM:SS, ...)
  std::string account;    // #SBATCH --account
  int cpus_per_task = 1;  // #SBATCH --cpus-per-task, and each run's --threads
  bool any() const { return !partition.empty() || !time.empty() || !account.empty(); }
  void validate() const;  // UsageError naming the option
};

enum class SlurmDevice { cpu, gpu };

struct SlurmResources {
  SlurmDevice device = SlurmDevice::cpu;
  int cpus_per_task = 1;
};

/// What every task of the array asks for (see above); `where` names the grid in errors.
SlurmResources slurm_resources(const std::vector<GridPoint>& points, const SlurmOptions& o, const std::string& where);

/// The sbatch options of one task: "--cpus-per-task=N", ["--gres=gpu:1"], then the passthrough ones.
std::vector<std::string> slurm_task_options(const SlurmResources& r, const SlurmOptions& o);

struct SlurmScripts {
  std::string array;   // the job array (bash with #SBATCH lines)
  std::string submit;  // the submit-and-collect helper (bash)
};

/// The helper's path for a job-array script: sweep.sbatch -> sweep-submit.sh, beside it.
std::filesystem::path slurm_submit_path(const std::filesystem::path& array_script);

/// Both scripts for the sweep `g` into `out` (absolute paths inside), run by `wdlab` (default for
/// $WDLAB), its array script to be written to `array_script`.
SlurmScripts slurm_scripts(const Grid& g, const std::filesystem::path& out, const std::vector<GridPoint>& points,
                           const SlurmOptions& o, const std::filesystem::path& array_script,
                           const std::filesystem::path& wdlab);

}  // namespace wdlab::app

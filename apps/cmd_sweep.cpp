// `wdlab sweep`: a grid of configs run as child `wdlab train` processes, the best point by
// held-out validation retrained on train+validation (paper App. A).
#include <boost/program_options.hpp>

#include "apps/command.hpp"
#include "apps/sweep_run.hpp"

namespace po = boost::program_options;

namespace wdlab::app {

int cmd_sweep(const Args& args) {
  SweepOptions o;
  std::string grid, out, slurm;
  po::options_description desc(
      "wdlab sweep --grid FILE [--out DIR] [-j N] [--dry-run] [--retry-failed]\n"
      "wdlab sweep --grid FILE [--out DIR] --emit-slurm FILE [--partition P] [--time T] [--account A]\n"
      "wdlab sweep --grid FILE [--out DIR] --collect\n\n"
      "Expands a grid file (a base config, fixed 'set' overrides and 'axes' of values for dotted\n"
      "keys, e.g. {\"lr\": [0.01, 0.1], \"weight_decay\": [0, 5e-4]}) into DIR/manifest.json: one\n"
      "resolved config per point under DIR/configs/<id>.json, id = 12 hex digits of the FNV-1a hash\n"
      "of the resolved config. Each point runs as a child `wdlab train` (this binary) into\n"
      "DIR/runs/<id>, output in DIR/logs/<id>.log, at most N at a time. Points with DONE are\n"
      "skipped; interrupted ones continue from their checkpoint (train --resume); failed ones (e.g.\n"
      "diverged, exit 4) are recorded in DIR/logs/<id>.failed and skipped unless --retry-failed.\n"
      "The best point is the one with the highest validation accuracy at the FINAL epoch (the\n"
      "grid's \"select\": val_acc, or val_loss for the lowest loss); the base config needs\n"
      "validation > 0. It is then retrained with validation 0, i.e. on train+validation (paper\n"
      "App. A), into DIR/final-<id>. Ctrl-C is forwarded once to the running children, which\n"
      "checkpoint; run the same command again to continue.\n\n"
      "Slurm: --emit-slurm FILE writes, instead of running, FILE, a job array (task i trains point i\n"
      "as above, skipping done and failed points, resuming interrupted ones; per task\n"
      "--cpus-per-task=N from --threads N (default 1) and each run trains with that many BLAS threads,\n"
      "--gres=gpu:1 only for backend cuda; --partition/--time/--account become #SBATCH lines) and its helper beside it (sweep.sbatch\n"
      "-> sweep-submit.sh): it submits the array tasks of the points not done yet, then one job after\n"
      "them (afterany) that runs --collect. --collect runs no grid point: when every point is done\n"
      "or failed it selects and retrains the final run as above (an existing final run is kept);\n"
      "otherwise it trains nothing and exits 5 naming the unfinished points (submit again).\n"
      "Exit: 0; 2 bad grid or option; 4 no point finished; 5 --collect with unfinished points;\n"
      "130/143 interrupted.\n\noptions");
  desc.add_options()
      ("help,h", "this text")
      ("grid", po::value(&grid), "grid file (JSON)")
      ("out,o", po::value(&out), "output directory (default runs/sweeps/<grid name>)")
      ("jobs,j", po::value(&o.jobs)->default_value(1), "training runs at once")
      ("emit-slurm", po::value(&slurm), "write a Slurm job array to FILE and its <stem>-submit.sh helper instead of running")
      ("partition", po::value(&o.slurm.partition), "with --emit-slurm: #SBATCH --partition")
      ("time", po::value(&o.slurm.time), "with --emit-slurm: #SBATCH --time per task (e.g. 30, 2:00:00, 1-12)")
      ("account", po::value(&o.slurm.account), "with --emit-slurm: #SBATCH --account")
      ("collect", po::bool_switch(&o.collect), "after a Slurm array: run no point; select and retrain (exit 5 while points are unfinished)")
      ("dry-run", po::bool_switch(&o.dry_run), "print the points and their ids, write nothing")
      ("retry-failed", po::bool_switch(&o.retry_failed),
       "run again the points that failed before (with --emit-slurm: clear their failure marks)");
  ThreadsRequest threads;
  if (!parse_options(
          desc, args,
          [&] {
            o.grid = grid;
            o.out = out;
            o.emit_slurm = slurm;
            o.validate();
          },
          &threads))
    return 0;
  // A Slurm task gets what --threads asks for, not this machine's cores: the login node that
  // writes the script is not the node that runs it.
  o.slurm.cpus_per_task = threads.requested > 0 ? threads.requested : 1;
  return run_sweep(o);
}

}  // namespace wdlab::app

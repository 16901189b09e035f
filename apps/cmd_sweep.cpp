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
      "wdlab sweep --grid FILE [--out DIR] [-j N] [--emit-slurm FILE] [--dry-run] [--retry-failed]\n\n"
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
      "checkpoint; run the same command again to continue. Exit: 0; 2 bad grid; 4 no point\n"
      "finished; 130/143 interrupted.\n\noptions");
  desc.add_options()
      ("help,h", "this text")
      ("grid", po::value(&grid), "grid file (JSON)")
      ("out,o", po::value(&out), "output directory (default runs/sweeps/<grid name>)")
      ("jobs,j", po::value(&o.jobs)->default_value(1), "training runs at once")
      ("emit-slurm", po::value(&slurm), "write a Slurm job-array script to FILE instead of running")
      ("dry-run", po::bool_switch(&o.dry_run), "print the points and their ids, write nothing")
      ("retry-failed", po::bool_switch(&o.retry_failed), "run again the points that failed before");
  if (!parse_options(desc, args, [&] {
        o.grid = grid;
        o.out = out;
        o.emit_slurm = slurm;
        o.validate();
      }))
    return 0;
  return run_sweep(o);
}

}  // namespace wdlab::app

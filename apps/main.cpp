// wdlab: one binary, subcommands. main() only wires: it dispatches and turns errors into one
// printed line and a documented exit code (README.md, "Exit codes").
#include <cstdio>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <exception>
#include <string>
#include <string_view>

#include <boost/program_options/errors.hpp>
#include <fmt/format.h>

#include "apps/command.hpp"
#include "common/errors.hpp"
#include "common/train/signals.hpp"
#include "wdlab/build_info.hpp"

namespace {

using wdlab::app::Args;

/// The subcommands: dispatch, the usage text and the unknown-command error all read this table.
struct Command {
  std::string_view name;
  std::string_view summary;  // one line of `wdlab --help`
  int (*run)(const Args&);
};

constexpr Command kCommands[] = {
    {"theory", "check the paper's statements numerically on random MLPs (double precision)", &wdlab::app::cmd_theory},
    {"train", "train one experiment on --backend reference|cuda into a run directory", &wdlab::app::cmd_train},
    {"eval", "loss and accuracy of a checkpoint", &wdlab::app::cmd_eval},
    {"measure", "mechanism metrics of a checkpoint (norms, effective LR and damping, Jacobian, GN norms, traces)",
     &wdlab::app::cmd_measure},
    {"bench", "step times of SGD, Adam, K-FAC-F, K-FAC-G on --backend reference|cuda as ratios to SGD",
     &wdlab::app::cmd_bench},
    {"info", "version, build, Eigen, CUDA build and whether a GPU is usable now", &wdlab::app::cmd_info},
    {"crosscheck", "compare two backends (reference double/float, cuda) quantity by quantity",
     &wdlab::app::cmd_crosscheck},
    {"sweep", "run a grid of configs, pick the best by validation, retrain it on train+validation",
     &wdlab::app::cmd_sweep},
    {"reproduce", "run a suite of the paper's experiments (laptop, demo or paper scale), then report",
     &wdlab::app::cmd_reproduce},
    {"report", "the paper's tables beside ours, the mechanism signatures and figures, from runs",
     &wdlab::app::cmd_report},
};

std::string usage() {
  std::string u = "usage: wdlab <command> [options]      (wdlab <command> --help for its options)\n\ncommands:\n";
  for (const auto& c : kCommands) u += fmt::format("  {:<10} {}\n", c.name, c.summary);
  u += "\noptions:\n  -h, --help     this text\n  --version      print the version\n";
  return u;
}

const Command* find_command(const std::string& name) {
  for (const auto& c : kCommands)
    if (c.name == name) return &c;
  return nullptr;
}

}  // namespace

int main(int argc, char** argv) {
#if defined(__GLIBC__)
  // The reference engine allocates large temporaries every step (im2col patches, activations).
  // glibc serves those with fresh mmaps and returns them at once, so every step paid page faults:
  // keeping freed memory in the heap made a small convnet's step 4x faster (28 s -> 7 s for 20
  // steps, measured with the same binary).
  mallopt(M_MMAP_THRESHOLD, 1 << 30);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  mallopt(M_TOP_PAD, 256 << 20);
#endif
  wdlab::app::Args args(argv + 1, argv + argc);
  if (args.empty()) {
    std::fputs(usage().c_str(), stderr);
    return int(wdlab::ExitCode::usage);
  }
  if (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
    std::fputs(usage().c_str(), stdout);
    return 0;
  }
  if (args[0] == "--version") {
    fmt::print("wdlab {}\n", wdlab::build::version);
    return 0;
  }
  const std::string cmd = args[0];
  const Command* command = find_command(cmd);
  if (!command) {
    fmt::print(stderr, "wdlab: unknown command '{}'\n", cmd);
    std::fputs(usage().c_str(), stderr);
    return int(wdlab::ExitCode::usage);
  }
  try {
    return command->run(Args(args.begin() + 1, args.end()));
  } catch (const wdlab::train::Interrupted& i) {
    fmt::print(stderr, "wdlab {}: stopped by signal {}; the run can continue with --resume\n", cmd, i.signal);
    return 128 + i.signal;
  } catch (const wdlab::app::UsageWithHelp& e) {
    fmt::print(stderr, "wdlab {}: {}\n\n{}\n", cmd, e.what(), e.help);
    return int(wdlab::ExitCode::usage);
  } catch (const boost::program_options::error& e) {
    fmt::print(stderr, "wdlab {}: {}\n", cmd, e.what());
    fmt::print(stderr, "run 'wdlab {} --help' for the options\n", cmd);
    return int(wdlab::ExitCode::usage);
  } catch (const wdlab::Error& e) {
    fmt::print(stderr, "wdlab {}: {}\n", cmd, e.what());
    if (e.code() == wdlab::ExitCode::usage)
      fmt::print(stderr, "run 'wdlab {} --help' for the options\n", cmd);
    return int(e.code());
  } catch (const std::exception& e) {
    fmt::print(stderr, "wdlab {}: internal error: {}\n", cmd, e.what());
    return int(wdlab::ExitCode::internal);
  }
}

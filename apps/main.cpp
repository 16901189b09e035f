// wdlab: one binary, subcommands. main() only wires: it dispatches and turns errors into one
// printed line and a documented exit code (README.md, "Exit codes").
#include <cstdio>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <exception>
#include <string>

#include <boost/program_options/errors.hpp>
#include <fmt/format.h>

#include "apps/command.hpp"
#include "common/errors.hpp"
#include "common/train/signals.hpp"
#include "wdlab/build_info.hpp"

namespace {

constexpr const char* kUsage = R"(usage: wdlab <command> [options]      (wdlab <command> --help for its options)

commands:
  theory     check the paper's statements numerically on random MLPs (double precision)
  train      train one experiment on the CPU reference backend into a run directory
  eval       loss and accuracy of a checkpoint
  measure    mechanism metrics of a checkpoint (norms, effective LR and damping, Jacobian, GN norms, traces)
  bench      step times of SGD, Adam, K-FAC-F, K-FAC-G (reference backend) as ratios to SGD
  info       version, build, Eigen, CUDA build and whether a GPU is usable now
  crosscheck compare two backends (reference double/float, cuda) quantity by quantity
  sweep      run a grid of configs, pick the best by validation, retrain it on train+validation
  reproduce  run a suite of the paper's experiments (laptop, demo or paper scale), then report
  report     the paper's tables beside ours, the mechanism signatures and figures, from runs

options:
  -h, --help     this text
  --version      print the version
)";

int dispatch(const std::string& cmd, const wdlab::app::Args& rest) {
  if (cmd == "theory") return wdlab::app::cmd_theory(rest);
  if (cmd == "info") return wdlab::app::cmd_info(rest);
  if (cmd == "train") return wdlab::app::cmd_train(rest);
  if (cmd == "eval") return wdlab::app::cmd_eval(rest);
  if (cmd == "bench") return wdlab::app::cmd_bench(rest);
  if (cmd == "measure") return wdlab::app::cmd_measure(rest);
  if (cmd == "sweep") return wdlab::app::cmd_sweep(rest);
  if (cmd == "reproduce") return wdlab::app::cmd_reproduce(rest);
  if (cmd == "report") return wdlab::app::cmd_report(rest);
  if (cmd == "crosscheck") return wdlab::app::cmd_crosscheck(rest);
  throw wdlab::InternalError("dispatch: '" + cmd + "' is not a command");
}

bool is_command(const std::string& cmd) {
  for (const char* c : {"theory", "info", "train", "eval", "measure", "crosscheck", "bench",
                        "sweep", "report", "reproduce"})
    if (cmd == c) return true;
  return false;
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
    std::fputs(kUsage, stderr);
    return int(wdlab::ExitCode::usage);
  }
  if (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
    std::fputs(kUsage, stdout);
    return 0;
  }
  if (args[0] == "--version") {
    fmt::print("wdlab {}\n", wdlab::build::version);
    return 0;
  }
  const std::string cmd = args[0];
  if (!is_command(cmd)) {
    fmt::print(stderr, "wdlab: unknown command '{}'\n", cmd);
    std::fputs(kUsage, stderr);
    return int(wdlab::ExitCode::usage);
  }
  try {
    return dispatch(cmd, wdlab::app::Args(args.begin() + 1, args.end()));
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

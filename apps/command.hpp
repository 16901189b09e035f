#pragma once
// The subcommands of `wdlab`. Each takes its own arguments (after the subcommand name) and
// returns an exit code; errors are thrown as wdlab::Error and reported by main().
#include <string>
#include <utility>

#include <iostream>
#include <sstream>

#include <boost/program_options.hpp>

#include "common/cpu_runtime.hpp"
#include "common/errors.hpp"
#include <vector>

namespace wdlab::app {

using Args = std::vector<std::string>;

int cmd_info(const Args& args);
int cmd_theory(const Args& args);
int cmd_train(const Args& args);
int cmd_eval(const Args& args);
int cmd_bench(const Args& args);
int cmd_crosscheck(const Args& args);
int cmd_measure(const Args& args);
int cmd_sweep(const Args& args);
int cmd_reproduce(const Args& args);
int cmd_report(const Args& args);

/// Parses "1,2,3" into integers; throws UsageError naming `option` on anything else.
std::vector<long long> parse_int_list(const std::string& option, const std::string& text);

/// A bad option or value, with the subcommand's option text that main() prints after the
/// one-line error (exit 2).
struct UsageWithHelp : UsageError {
  UsageWithHelp(const UsageError& e, std::string help_text)
      : UsageError(e), help(std::move(help_text)) {}
  std::string help;
};

/// Parses `args` against `desc`, then runs `validate`. Any boost::program_options error or
/// UsageError becomes UsageWithHelp carrying desc's text. Returns false when --help was given
/// (the usage is printed on stdout; the command returns 0).
/// What --threads asked for (0: not given, the default applies); for commands that pass the
/// count on, e.g. `sweep --emit-slurm` as each task's CPUs.
struct ThreadsRequest {
  int requested = 0;
};

template <class F>
bool parse_options(const boost::program_options::options_description& desc, const Args& args,
                   F&& validate, ThreadsRequest* threads_request = nullptr);

template <class F>
bool parse_options(const boost::program_options::options_description& desc, const Args& args,
                   F&& validate, ThreadsRequest* threads_request) {
  // Every command takes --threads: one count for the BLAS behind the CPU engine's products.
  int threads = 0;
  boost::program_options::options_description cpu("CPU");
  cpu.add_options()("threads", boost::program_options::value(&threads)->default_value(0),
                    "threads for the CPU engine's BLAS; 0 = WDLAB_THREADS if set, else every core "
                    "(sweep/reproduce divide theirs between the -j children)");
  boost::program_options::options_description all;
  all.add(desc).add(cpu);
  std::ostringstream usage;
  usage << all;
  try {
    boost::program_options::variables_map vm;
    boost::program_options::store(
        boost::program_options::command_line_parser(args).options(all).run(), vm);
    if (vm.count("help")) {
      std::cout << usage.str() << "\n";
      return false;
    }
    boost::program_options::notify(vm);
    set_cpu_threads(threads);
    keep_freed_memory();
    if (threads_request) threads_request->requested = threads;
    validate();
  } catch (const UsageWithHelp&) {
    throw;
  } catch (const UsageError& e) {
    throw UsageWithHelp(e, usage.str());
  } catch (const boost::program_options::error& e) {
    throw UsageWithHelp(UsageError("options", e.what()), usage.str());
  }
  return true;
}

}  // namespace wdlab::app

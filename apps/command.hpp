#pragma once
// The subcommands of `wdlab`. Each takes its own arguments (after the subcommand name) and
// returns an exit code; errors are thrown as wdlab::Error and reported by main().
#include <string>
#include <utility>

#include <iostream>
#include <sstream>

#include <boost/program_options.hpp>

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
template <class F>
bool parse_options(const boost::program_options::options_description& desc, const Args& args,
                   F&& validate);

template <class F>
bool parse_options(const boost::program_options::options_description& desc, const Args& args,
                   F&& validate) {
  std::ostringstream usage;
  usage << desc;
  try {
    boost::program_options::variables_map vm;
    boost::program_options::store(
        boost::program_options::command_line_parser(args).options(desc).run(), vm);
    if (vm.count("help")) {
      std::cout << usage.str() << "\n";
      return false;
    }
    boost::program_options::notify(vm);
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

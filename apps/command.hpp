#pragma once
// The subcommands of `wdlab`. Each takes its own arguments (after the subcommand name) and
// returns an exit code; errors are thrown as wdlab::Error and reported by main().
#include <string>
#include <utility>

#include <boost/program_options/errors.hpp>

#include "common/errors.hpp"
#include <vector>

namespace wdlab::app {

using Args = std::vector<std::string>;

int cmd_info(const Args& args);
int cmd_theory(const Args& args);
int cmd_train(const Args& args);
int cmd_eval(const Args& args);
int cmd_bench(const Args& args);

/// Parses "1,2,3" into integers; throws UsageError naming `option` on anything else.
std::vector<long long> parse_int_list(const std::string& option, const std::string& text);

/// A bad option or value, with the subcommand's option text that main() prints after the
/// one-line error (exit 2).
struct UsageWithHelp : UsageError {
  UsageWithHelp(const UsageError& e, std::string help_text)
      : UsageError(e), help(std::move(help_text)) {}
  std::string help;
};

/// Runs `parse_and_validate`; any boost::program_options error or UsageError it throws is
/// rethrown as UsageWithHelp carrying `usage`.
template <class F>
void with_usage(const std::string& usage, F&& parse_and_validate);

template <class F>
void with_usage(const std::string& usage, F&& parse_and_validate) {
  try {
    parse_and_validate();
  } catch (const UsageWithHelp&) {
    throw;
  } catch (const UsageError& e) {
    throw UsageWithHelp(e, usage);
  } catch (const boost::program_options::error& e) {
    throw UsageWithHelp(UsageError("options", e.what()), usage);
  }
}

}  // namespace wdlab::app

// `wdlab theory`: every statement of the paper checked on random MLPs, one row per check.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <sstream>
#include <unistd.h>

#include <boost/program_options.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "apps/command.hpp"
#include "common/errors.hpp"
#include "theory/random_networks.hpp"
#include "theory/suite.hpp"

namespace po = boost::program_options;

namespace wdlab::app {

namespace {

enum class Format { table, json };

struct TheoryOptions {
  theory::SuiteOptions suite;
  Format format = Format::table;
  bool list = false;
  bool times = false;          // --times: seconds per check id after the summary
  int random = 0;              // --random N: N random networks instead of the grid
  std::uint64_t random_seed = 1;
};

std::string join(const auto& xs) {
  std::string s;
  for (const auto& x : xs) s += (s.empty() ? "" : ",") + std::to_string(x);
  return s;
}

void print_table_header() {
  fmt::print("{:<22} {:<30} {:<62} {:<44} {:>13} {:>13} {:>9} {:>7} {:<6} {:<6} {}\n", "id",
             "paper_ref", "statement", "network", "lhs", "rhs", "rel_err", "tol", "expect",
             "outcome", "");
}

void print_row(const theory::CheckRecord& r) {
  if (r.skipped()) {
    fmt::print("{:<22} {:<30} {:<62} {:<44} {:>13} {:>13} {:>9} {:>7} {:<6} {:<6} {}\n", r.id, "", "",
               r.network, "", "", "", "", theory::to_string(r.expect), "skip", r.reason);
    return;
  }
  fmt::print("{:<22} {:<30} {:<62} {:<44} {:>13.6g} {:>13.6g} {:>9.2e} {:>7.2g} {:<6} {:<6} {}\n",
             r.id, r.paper_ref, r.statement, r.network, r.lhs, r.rhs, r.rel_err, r.tol,
             theory::to_string(r.expect), theory::to_string(r.outcome),
             r.pass() ? "ok" : "UNEXPECTED" + (r.reason.empty() ? "" : " (" + r.reason + ")"));
}

/// A number, or null where it is not finite (JSON has no NaN/Inf; the checks never produce one
/// on purpose, so a null marks a bug worth reporting, not a value).
nlohmann::ordered_json number(double x) {
  return std::isfinite(x) ? nlohmann::ordered_json(x) : nlohmann::ordered_json(nullptr);
}

nlohmann::ordered_json to_json(const theory::CheckRecord& r) {
  return {{"id", r.id},           {"paper_ref", r.paper_ref},
          {"statement", r.statement}, {"network", r.network},
          {"lhs", number(r.lhs)}, {"rhs", number(r.rhs)},
          {"rel_err", number(r.rel_err)}, {"tol", number(r.tol)},
          {"tol_basis", r.tol_basis},
          {"expect", theory::to_string(r.expect)},
          {"outcome", theory::to_string(r.outcome)},
          {"pass", r.pass()},
          {"reason", r.reason},
          {"seconds", r.seconds}};
}

/// --random N: every network's verdict on one line (table) or all rows (json); the first failing
/// network is shrunk and its reproducing command printed; exit 0 only if every network passes.
int run_random(const TheoryOptions& opt) {
  const auto t0 = std::chrono::steady_clock::now();
  nlohmann::ordered_json out = nlohmann::ordered_json::array();
  int failed = 0, total_rows = 0, total_skipped = 0;
  for (int i = 0; i < opt.random; ++i) {
    theory::SuiteOptions o = theory::draw_network(opt.random_seed, i);
    o.only = opt.suite.only;
    const auto t1 = std::chrono::steady_clock::now();
    const auto rows = theory::run_suite(o);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count();
    const auto sum = theory::summarize(rows);
    total_rows += sum.rows;
    total_skipped += sum.skipped;
    if (opt.format == Format::json)
      for (const auto& r : rows) {
        auto j = to_json(r);
        j["random_network"] = i;
        out.push_back(j);
      }
    else
      fmt::print("network {:>4}: {:<72} {:>3} rows {:>2} skipped {:>2} unexpected {:6.3f} s{}\n", i,
                 theory::reproduce_command(o), sum.rows, sum.skipped, sum.unexpected, secs,
                 sum.unexpected == 0 ? "" : "  FAILED");
    if (sum.unexpected > 0) {
      for (const auto& r : rows)
        if (!r.skipped() && !r.pass())
          fmt::print(stderr, "  unexpected: {} {} rel_err {:.3g} tol {:.3g}{}\n", r.id, r.network,
                     r.rel_err, r.tol, r.reason.empty() ? "" : " (" + r.reason + ")");
      if (failed++ == 0) {
        const auto small = theory::shrink(o, theory::suite_fails);
        fmt::print(stderr, "smallest failing network found by shrinking: {}\n",
                   theory::reproduce_command(small));
      }
    }
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (opt.format == Format::json) fmt::print("{}\n", out.dump(1));
  const bool too_many_skipped = 20 * total_skipped >= total_rows;
  if (too_many_skipped)
    fmt::print(stderr, "wdlab theory: {} of {} rows skipped (the limit is 5%)\n", total_skipped, total_rows);
  fmt::print(opt.format == Format::json ? stderr : stdout,
             "{}{} random networks (seed {}): {} passed, {} failed; {} rows, {} skipped; {:.2f} s\n",
             opt.format == Format::json ? "" : "\n", opt.random, opt.random_seed, opt.random - failed,
             failed, total_rows, total_skipped, secs);
  return failed == 0 && !too_many_skipped ? 0 : int(ExitCode::check_failed);
}

}  // namespace

std::vector<long long> parse_int_list(const std::string& option, const std::string& text) {
  std::vector<long long> out;
  std::size_t pos = 0;
  while (pos <= text.size()) {
    const std::size_t comma = text.find(',', pos);
    const std::string item = text.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    std::size_t used = 0;
    long long v = 0;
    try {
      v = std::stoll(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (item.empty() || used != item.size())
      throw UsageError(option, fmt::format("expected a comma-separated list of integers, got '{}'", text));
    out.push_back(v);
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  return out;
}

int cmd_theory(const Args& args) {
  TheoryOptions opt;
  std::string depths = join(opt.suite.depths), widths = join(opt.suite.widths),
              seeds = join(opt.suite.seeds), format = "table";
  long long random_seed = 1;
  po::options_description desc(
      "wdlab theory [options]\n\n"
      "Checks every statement of the paper (Lemma 1-2, Theorem 1, App. E, Eq. 7-9, 15-16, the\n"
      "Fisher/GN identities) on random MLPs in double precision, one row per check and network,\n"
      "with negative controls that must fail. Exit status 0 only if every row has its expected\n"
      "outcome (1 otherwise).\n\noptions");
  desc.add_options()
      ("help,h", "this text")
      ("depths", po::value(&depths)->default_value(depths), "hidden-layer counts L, comma-separated (1..8)")
      ("widths", po::value(&widths)->default_value(widths), "hidden widths, comma-separated (1..64)")
      ("seeds", po::value(&seeds)->default_value(seeds), "RNG seeds for weights and data, comma-separated")
      ("input-dim", po::value(&opt.suite.input_dim)->default_value(opt.suite.input_dim), "input dimension d (1..64)")
      ("classes", po::value(&opt.suite.classes)->default_value(opt.suite.classes), "outputs K (2..32)")
      ("batch", po::value(&opt.suite.batch)->default_value(opt.suite.batch), "examples N per network (2..512)")
      ("only", po::value(&opt.suite.only), "run only the checks whose id starts with this prefix")
      ("format", po::value(&format)->default_value(format), "table | json")
      ("list", po::bool_switch(&opt.list), "list the check ids and exit")
      ("times", po::bool_switch(&opt.times), "print the seconds spent per check id (table format)")
      ("random", po::value(&opt.random)->default_value(0),
       "run N random networks drawn from the full ranges instead of the grid (1..100000); a failing "
       "one is shrunk to the smallest failing network and its command printed")
      ("seed", po::value(&random_seed)->default_value(1), "the stream of --random's networks (>= 0)");
  if (!parse_options(desc, args, [&] {
    if (format == "table") opt.format = Format::table;
    else if (format == "json") opt.format = Format::json;
    else throw UsageError("--format", fmt::format("expected table or json, got '{}'", format));
    auto to_ints = [](const std::string& opt_name, const std::string& text) {
      std::vector<int> v;
      for (long long x : parse_int_list(opt_name, text)) {
        if (x < -1000000 || x > 1000000) throw UsageError(opt_name, fmt::format("{} is out of range", x));
        v.push_back(int(x));
      }
      return v;
    };
    opt.suite.depths = to_ints("--depths", depths);
    opt.suite.widths = to_ints("--widths", widths);
    opt.suite.seeds.clear();
    for (long long s : parse_int_list("--seeds", seeds)) {
      if (s < 0) throw UsageError("--seeds", fmt::format("seeds must be >= 0, got {}", s));
      opt.suite.seeds.push_back(std::uint64_t(s));
    }
    if (opt.random < 0 || opt.random > 100000)
      throw UsageError("--random", fmt::format("must be in 0..100000, got {}", opt.random));
    if (random_seed < 0) throw UsageError("--seed", fmt::format("must be >= 0, got {}", random_seed));
    opt.random_seed = std::uint64_t(random_seed);
    opt.suite.validate();
  }))
    return 0;
  if (opt.list) {
    for (const auto& id : theory::all_ids()) fmt::print("{}\n", id);
    return 0;
  }

  if (opt.random > 0) return run_random(opt);

  const auto t0 = std::chrono::steady_clock::now();
  if (opt.format == Format::table) print_table_header();
  const auto rows = theory::run_suite(opt.suite, [&](const theory::CheckRecord& r) {
    if (opt.format == Format::table) print_row(r);
  });
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const auto sum = theory::summarize(rows);
  const int ran = sum.rows - sum.skipped;
  if (opt.format == Format::json) {
    nlohmann::ordered_json out = nlohmann::ordered_json::array();
    for (const auto& r : rows) out.push_back(to_json(r));
    fmt::print("{}\n", out.dump(1));
    fmt::print(stderr, "{} rows, {} skipped, {} unexpected, {:.2f} s\n", sum.rows, sum.skipped,
               sum.unexpected, secs);
  } else {
    fmt::print("\n{} rows ({} checks, {} negative controls): {} as expected, {} unexpected, {} skipped; "
               "{:.2f} s\n",
               sum.rows, sum.rows - sum.controls, sum.controls, ran - sum.unexpected, sum.unexpected,
               sum.skipped, secs);
  }
  if (opt.times && opt.format == Format::table) {
    std::vector<std::pair<std::string, std::pair<int, double>>> per_id;
    for (const auto& r : rows) {
      auto it = std::find_if(per_id.begin(), per_id.end(), [&](const auto& e) { return e.first == r.id; });
      if (it == per_id.end()) per_id.push_back({r.id, {0, 0.0}}), it = per_id.end() - 1;
      it->second.first += 1;
      it->second.second += r.seconds;
    }
    fmt::print("\n{:<26} {:>5} {:>10}\n", "id", "rows", "seconds");
    for (const auto& [id, v] : per_id) fmt::print("{:<26} {:>5} {:>10.3f}\n", id, v.first, v.second);
  }
  if (sum.unexpected == 0 && !sum.ok())
    fmt::print(stderr, "wdlab theory: {} of {} rows skipped (the limit is 5%)\n", sum.skipped, sum.rows);
  return sum.ok() ? 0 : int(ExitCode::check_failed);
}

}  // namespace wdlab::app

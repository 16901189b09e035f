// `wdlab report RUN_DIRS... --out DIR`: the paper's tables beside ours, the mechanism signatures and
// the figures, from run directories.
#include <boost/program_options.hpp>

#include "apps/command.hpp"
#include "apps/report.hpp"

namespace po = boost::program_options;

namespace wdlab::app {

int cmd_report(const Args& args) {
  ReportOptions o;
  std::vector<std::string> inputs;
  std::string out, python, script;
  bool no_figures = false;
  po::options_description desc(
      "wdlab report RUN_DIRS... --out DIR [--no-figures] [--python /usr/bin/python3]\n\n"
      "Reads run directories (config.json + metrics.jsonl), sweep directories (their final run)\n"
      "and directories holding them (searched 4 levels deep; the parent directory of a run names\n"
      "its group, e.g. a suite's experiment) and writes DIR/report.md: the mechanism signatures by\n"
      "the pre-registered rules of apps/report_rules.hpp (I.1 ELR ratio, I.2 rotation vs prediction,\n"
      "II.1 Jacobian factor, II.2 GN norm ~ Jacobian, III.1 effective damping growth, III.2 Fisher\n"
      "fall vs GN span), runs paired by family and seed, each value with its spread over seeds and\n"
      "a verdict; test accuracy mean +- sd over seeds (informational); Tables 1-3 laid out as the paper's\n"
      "with the paper's numbers beside ours and the difference, the figures (DIR/figures/*.png and\n"
      ".svg, drawn by scripts/plot_report.py with Debian's matplotlib) and a table of every run;\n"
      "also DIR/signatures.json and DIR/report-data.json. A metric no run logged is noted, not an\n"
      "error. Exit: 0; 2 bad options; 3 no run found or a file unreadable.\n\noptions");
  desc.add_options()
      ("help,h", "this text")
      ("out,o", po::value(&out), "output directory")
      ("no-figures", po::bool_switch(&no_figures), "tables only")
      ("python", po::value(&python), "interpreter with matplotlib (default /usr/bin/python3)")
      ("plot-script", po::value(&script), "default scripts/plot_report.py (of ./ or the source tree)")
      ("inputs", po::value(&inputs)->composing(), "run, sweep or suite directories");
  po::positional_options_description pos;
  pos.add("inputs", -1);
  std::ostringstream usage;
  usage << desc;
  try {
    po::variables_map vm;
    po::store(po::command_line_parser(args).options(desc).positional(pos).run(), vm);
    if (vm.count("help")) {
      std::cout << usage.str() << "\n";
      return 0;
    }
    po::notify(vm);
    for (const auto& i : inputs) o.inputs.push_back(i);
    o.out = out;
    o.figures = !no_figures;
    if (!python.empty()) o.python = python;
    if (!script.empty()) o.plot_script = script;
    o.validate();
  } catch (const UsageError& e) {
    throw UsageWithHelp(e, usage.str());
  } catch (const po::error& e) {
    throw UsageWithHelp(UsageError("options", e.what()), usage.str());
  }
  return run_report(o);
}

}  // namespace wdlab::app

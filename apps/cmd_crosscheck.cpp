// `wdlab crosscheck`: runs the cases of the one registry (apps/crosscheck/cases.hpp) on two
// sides (apps/crosscheck/side.hpp) with the same inputs and compares every quantity, one line of
// evidence per comparison (apps/crosscheck/report.hpp). Exit 0 when every comparison passed,
// 1 when any failed, was missing or unsupported, 2 for bad options or a side that cannot run
// here (the CUDA side without a GPU).
#include <chrono>
#include <cstdio>

#include <boost/program_options.hpp>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "apps/command.hpp"
#include "common/errors.hpp"
#include "common/fault.hpp"
#include "apps/crosscheck/case_data.hpp"
#include "apps/crosscheck/cases.hpp"
#include "apps/crosscheck/cuda_capture.hpp"
#include "apps/crosscheck/report.hpp"
#include "apps/crosscheck/side.hpp"

namespace po = boost::program_options;

namespace wdlab::app {

#if defined(WDLAB_HAVE_CUDA)
std::unique_ptr<xcheck::Side> make_cuda_side();  // apps/crosscheck/side_cuda.cpp
#endif

namespace {

struct Options {
  std::string a = "reference-double", b = "reference-float";
  bool layers = false, exact = false, coverage = false, list = false;
  std::string networks, optimizers, only, format = "table", perturb;
  double perturb_rel = 1e-3, width_mult = 1.0;
  int steps = 1, batch = 0;
  std::uint64_t seed = 1;

  std::vector<std::string> split(const std::string& s, const std::vector<std::string>& all) const {
    std::vector<std::string> out;
    if (s == "all") return all;
    std::string cur;
    for (char ch : s + ",") {
      if (ch == ',') {
        if (!cur.empty()) out.push_back(cur);
        cur.clear();
      } else {
        cur += ch;
      }
    }
    return out;
  }

  xcheck::Selection selection() const {
    xcheck::Selection s;
    s.input = exact ? xcheck::InputKind::small_integer : xcheck::InputKind::gaussian;
    s.networks = split(networks, xcheck::network_names());
    s.optimizers = split(optimizers, xcheck::optimizer_names());
    const auto known = xcheck::optimizer_names();  // one list: iterators of two calls never meet
    for (const auto& o : s.optimizers)
      if (std::find(known.begin(), known.end(), o) == known.end())
        throw UsageError("--optimizer", fmt::format("unknown optimizer '{}' ({}, all)", o, optim::optimizer_kind_list()));
    if (!s.optimizers.empty() && s.networks.empty()) s.networks = {"mlp"};
    // No mode given: every layer kind alone.
    s.layers = layers || (!exact && s.networks.empty());
    s.width_mult = width_mult;
    s.batch = batch;
    s.steps = steps;
    s.seed = seed;
    return s;
  }

  void validate() const {
    if (format != "table" && format != "json") throw UsageError("--format", "expected table or json");
    if (exact && (!networks.empty() || !optimizers.empty()))
      throw UsageError("--exact", "covers single layers only; leave out --network/--optimizer");
    if (!(width_mult > 0)) throw UsageError("--width-mult", "must be > 0");
    if (steps < 1) throw UsageError("--steps", "must be >= 1");
    if (batch < 0) throw UsageError("--batch", "must be >= 0 (0: the default)");
  }
};

}  // namespace

int cmd_crosscheck(const Args& args) {
  Options o;
  po::options_description desc(
      "wdlab crosscheck [--a SIDE] [--b SIDE] [--layers] [--network NAME,...] [--optimizer NAME,... --steps N]\n"
      "                 [--exact] [--coverage] [--list] [--only TEXT] [--format table|json]\n\n"
      "Runs every case of the registry on two sides with the same inputs (shared Philox RNG) and\n"
      "compares each quantity: activations, pre-activations, BN outputs and statistics, loss,\n"
      "gradients, K-FAC factors (same sampled targets and probes), damped inverses, preconditioned\n"
      "gradients, parameters and optimizer state after N steps, mechanism metrics. One line per\n"
      "comparison: status, case, tensor, shape, relative Frobenius error, max abs error and where,\n"
      "tolerance (common/tolerances.hpp) and margin. Side a is the reference of the errors.\n"
      "Sides: reference-double, reference-float, direct (plain loops, --exact), cuda.\n"
      "No mode: --layers. Exit 0 all passed, 1 any failed/missing/unsupported, 2 bad options or\n"
      "a side that cannot run here (cuda without a GPU).\n\noptions");
  desc.add_options()
      ("help,h", "this text")
      ("a", po::value(&o.a)->default_value(o.a), "side a (the reference of the errors)")
      ("b", po::value(&o.b)->default_value(o.b), "side b (compared against a)")
      ("layers", po::bool_switch(&o.layers), "every layer kind alone over the registry's geometries, and the losses")
      ("network", po::value(&o.networks), "whole networks: mlp, mlp-bn, convnet-bn, vgg16, vgg16-bn, resnet32x4, resnet32x4-bn, all")
      ("optimizer", po::value(&o.optimizers),
       ("N steps of " + optim::optimizer_kind_list() + " or all on the --network(s) (default mlp)").c_str())
      ("steps", po::value(&o.steps)->default_value(o.steps), "optimizer steps")
      ("exact", po::bool_switch(&o.exact), "integer inputs, weights and cotangents in [-8,7], single layers, bit for bit: every sum is an integer below 2^24, "
       "exact in double and in float32 (reference-float, cuda: K-FAC factors, divided by N*T, at the float tolerance)")
      ("batch", po::value(&o.batch)->default_value(o.batch), "batch of whole networks (0: 8)")
      ("width-mult", po::value(&o.width_mult)->default_value(o.width_mult), "scale whole networks' widths (CPU runs: 0.125)")
      ("seed", po::value(&o.seed)->default_value(o.seed), "seed of inputs, weights, sampled targets and probes")
      ("only", po::value(&o.only), "only cases whose name contains TEXT")
      ("coverage", po::bool_switch(&o.coverage), "list layer kinds, losses, optimizers and metrics with and without a case; run nothing")
      ("list", po::bool_switch(&o.list), "list the selected cases; run nothing")
      ("format", po::value(&o.format)->default_value(o.format), "table | json")
      ("perturb", po::value(&o.perturb), "(test only: negative control) perturb side b's tensors whose name starts with TEXT")
      ("perturb-rel", po::value(&o.perturb_rel)->default_value(o.perturb_rel), "(test only) relative size of --perturb");
  if (!parse_options(desc, args, [&] { o.validate(); })) return 0;

  if (o.coverage) {
    xcheck::Selection all;
    all.layers = true;
    all.networks = xcheck::network_names();
    auto cases = xcheck::registry(all);
    all.optimizers = xcheck::optimizer_names();
    all.networks = {"mlp"};
    all.layers = false;
    for (auto& c : xcheck::registry(all)) cases.push_back(std::move(c));
    xcheck::Selection ex;
    ex.input = xcheck::InputKind::small_integer;
    for (auto& c : xcheck::registry(ex)) cases.push_back(std::move(c));
    for (const auto& l : xcheck::coverage(cases)) fmt::print("{}\n", l);
    for (const auto& l : xcheck::cuda_side::coverage()) fmt::print("{}\n", l);
    return 0;
  }

  auto cases = xcheck::registry(o.selection());
  if (!o.only.empty())
    std::erase_if(cases, [&](const xcheck::Case& c) { return c.name.find(o.only) == std::string::npos; });
  if (o.list) {
    for (const auto& c : cases) fmt::print("{:<10} {}\n", xcheck::to_string(c.kind), c.name);
    return 0;
  }
  if (cases.empty()) throw UsageError("--only", "no case matches");

  std::unique_ptr<xcheck::Side> a, b;
  try {
#if defined(WDLAB_HAVE_CUDA)
    const xcheck::CudaSideFactory cuda = &make_cuda_side;
#else
    const xcheck::CudaSideFactory cuda = nullptr;
#endif
    a = xcheck::make_side(o.a, cuda);
    b = xcheck::make_side(o.b, cuda);
  } catch (const xcheck::SideUnavailable& e) {
    fmt::print(stderr, "wdlab crosscheck: {}\n", e.what());  // one line, exit 2
    return int(ExitCode::usage);
  }
  if (!o.perturb.empty()) b = xcheck::make_perturbed(std::move(b), o.perturb, o.perturb_rel);

  xcheck::Summary sum;
  nlohmann::ordered_json json = nlohmann::ordered_json::array();
  const bool table = o.format == "table";
  if (table) fmt::print("crosscheck: a = {}, b = {}, {} case(s)\n", a->name(), b->name(), cases.size());
  const auto t0 = std::chrono::steady_clock::now();
  for (const auto& c : cases) {
    std::vector<xcheck::Line> lines;
    std::string why = a->unsupported(c);
    if (why.empty()) why = b->unsupported(c);
    const bool float_side = a->precision() == xcheck::Precision::float32 || b->precision() == xcheck::Precision::float32;
    if (why.empty() && float_side && c.input == xcheck::InputKind::small_integer &&
        xcheck::integer_sum_bound(c) >= xcheck::kFloat32ExactIntegers)
      why = fmt::format("sums up to {} exceed 2^24: not exact in float32", xcheck::integer_sum_bound(c));
    if (!why.empty()) {
      lines.push_back(xcheck::unsupported_line(c, why));
    } else {
      const auto data = xcheck::make_case_data(c);
      try {
        if (fault::crosscheck_error(c.name))  // test-only (common/fault.hpp)
          throw DeviceError("injected: cuDNN status 3 (CUDNN_STATUS_BAD_PARAM) in " + c.name);
        const auto ta = a->run(c, data);
        const auto tb = b->run(c, data);
        lines = xcheck::compare_tensors(c, ta, tb, a->precision(), b->precision());
        for (auto& l : lines) {
          if (l.status != xcheck::Status::missing) continue;
          std::string w = b->why_missing(c, l.tensor, l.quantity);
          if (w.empty()) w = a->why_missing(c, l.tensor, l.quantity);
          if (!w.empty()) l.message += ": " + w;
        }
      } catch (const xcheck::CaseUnsupported& e) {
        lines = {xcheck::unsupported_line(c, e.what())};
      } catch (const Error& e) {
        // Any error inside one case (cuDNN, cuSOLVER, a numeric failure, a setting a side
        // refuses mid-case) fails that case with its message; the other cases still run.
        lines = {xcheck::error_line(c, e.what())};
      }
    }
    for (const auto& l : lines) {
      sum.add(l);
      if (table) fmt::print("{}\n", xcheck::format_line(l));
      else json.push_back(xcheck::to_json(l));
    }
    std::fflush(stdout);
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (table) {
    fmt::print("crosscheck: {} in {:.1f} s: {}\n", sum.describe(), secs, sum.failures() ? "FAIL" : "PASS");
  } else {
    nlohmann::ordered_json out;
    out["a"] = a->name();
    out["b"] = b->name();
    out["comparisons"] = json;
    out["passed"] = sum.pass;
    out["failed"] = sum.fail;
    out["missing"] = sum.missing;
    out["unsupported"] = sum.unsupported;
    out["seconds"] = secs;
    out["pass"] = sum.failures() == 0;
    fmt::print("{}\n", out.dump(2));
  }
  return sum.failures() ? int(ExitCode::check_failed) : 0;
}

}  // namespace wdlab::app

// `wdlab measure`: the mechanism metrics (common/train/measure.hpp) of a run's checkpoint.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>

#include <boost/program_options.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "apps/command.hpp"
#include "apps/cuda_setup.hpp"
#include "apps/experiment_config.hpp"
#include "apps/run_setup.hpp"
#include "common/errors.hpp"
#include "common/io/json_config.hpp"
#include "common/io/safetensors.hpp"
#include "common/train/epoch_metrics.hpp"
#include "common/optim/schedule.hpp"

namespace po = boost::program_options;
namespace fs = std::filesystem;

namespace wdlab::app {

namespace {

struct MeasureOptions {
  std::string run, checkpoint, metrics = "all", format = "table", distribution, backend = "reference";
  std::string probe_split, curvature_bn;  // empty: the run's
  int probe = 0, jac_probes = 0;  // 0: the run's metrics.probe / metrics.jac_probes
  void validate() const {
    if (run.empty() && checkpoint.empty()) throw UsageError("--run", "give --run DIR or --checkpoint FILE");
    if (format != "table" && format != "json")
      throw UsageError("--format", fmt::format("expected table or json, got '{}'", format));
    if (probe < 0) throw UsageError("--probe", "must be >= 1");
    if (jac_probes < 0) throw UsageError("--jac-probes", "must be >= 1");
    (void)train::parse_metric_groups("--metrics", metrics);
    if (!distribution.empty()) (void)train::parse_probe_distribution("--probe-distribution", distribution);
    if (!probe_split.empty()) (void)train::parse_probe_split("--probe-split", probe_split);
    if (!curvature_bn.empty()) (void)train::parse_curvature_bn("--curvature-bn", curvature_bn);
  }
};

/// The checkpoint that <run>/checkpoints/latest names.
fs::path latest_checkpoint(const fs::path& run) {
  const fs::path latest = run / "checkpoints" / "latest";
  std::ifstream in(latest);
  std::string name;
  if (!in || !std::getline(in, name) || name.empty())
    throw DataError(latest.string(), "missing or empty (no checkpoint to measure; pass --checkpoint)");
  return run / "checkpoints" / name;
}

std::int64_t metadata_int(const io::SafetensorsFile& f, const std::string& key) {
  if (!f.metadata.count(key)) return 0;
  try {
    return std::stoll(f.metadata.at(key));
  } catch (const std::exception&) {
    throw DataError(f.source, fmt::format("metadata '{}' is not an integer", key));
  }
}

}  // namespace

int cmd_measure(const Args& args) {
  MeasureOptions o;
  po::options_description desc(
      "wdlab measure --run DIR [--checkpoint FILE] [--metrics LIST] [--probe N] [--format table|json]\n"
      "              [--probe-split train|test] [--curvature-bn batch|eval] [--backend reference|cuda]\n\n"
      "The mechanism metrics of a checkpoint (default: the run's latest) on the run's data set.\n"
      "The config comes from DIR/config.json, or from the checkpoint's metadata without --run.\n"
      "gap evaluates the training and test sets in evaluation mode: gen_gap = test_loss -\n"
      "train_eval_loss. The learning rate for elr is the run's schedule at the checkpoint's last\n"
      "step. rotation takes one optimizer step from the checkpoint's state (any optimizer) on the\n"
      "probe batch with that learning rate, reports that step's angle and |g|/|W| per weight tensor\n"
      "beside the equilibrium predictions, and restores the state (the checkpoint is not written).\n"
      "The probe set and BN mode default to the run's (metrics.probe_split, metrics.curvature_bn;\n"
      "a run from before those keys: test and eval). Metric groups (comma-separated; 'all',\n"
      "'default', 'none'):\n" +
      train::metric_groups_help() + "\noptions");
  desc.add_options()
      ("help,h", "this text")
      ("run", po::value(&o.run), "a run directory written by wdlab train")
      ("checkpoint", po::value(&o.checkpoint), "a .safetensors checkpoint (default: DIR's latest)")
      ("metrics", po::value(&o.metrics)->default_value(o.metrics), "metric groups")
      ("probe", po::value(&o.probe), "probe set size N: the first N examples of the probe split (default: the run's)")
      ("probe-split", po::value(&o.probe_split), "train | test: where the probe set comes from (default: the run's)")
      ("curvature-bn", po::value(&o.curvature_bn),
       "batch | eval: BN in the curvature passes, the probe batch's statistics or the running ones (default: the run's)")
      ("jac-probes", po::value(&o.jac_probes), "random projections for jac_norm_est (default: the run's, 16)")
      ("probe-distribution", po::value(&o.distribution), "rademacher | gaussian (default: the run's)")
      ("format", po::value(&o.format)->default_value(o.format), "table | json")
      ("backend", po::value(&o.backend)->default_value(o.backend),
       "reference | cuda: where the metrics are computed (a checkpoint of either backend loads on either)");
  if (!parse_options(desc, args, [&] { o.validate(); })) return 0;
  const BackendKind backend_kind = backend_option(o.backend);  // no GPU: one line, exit 2, nothing read

  const fs::path ckpt = o.checkpoint.empty() ? latest_checkpoint(o.run) : fs::path(o.checkpoint);
  const io::SafetensorsFile file = io::load(ckpt);
  ExperimentConfig cfg;
  if (!o.run.empty()) {
    auto j = io::read_json_file(fs::path(o.run) / "config.json");
    apply_legacy_metric_keys(j);  // a run from before metrics.probe_split keeps its meaning
    cfg = parse_config(j);
  } else {
    if (!file.metadata.count("config"))
      throw DataError(ckpt.string(), "metadata has no 'config' (not written by wdlab train?)");
    auto j = io::parse_json_text(file.metadata.at("config"), ckpt.string() + ": metadata config");
    apply_legacy_metric_keys(j);
    cfg = parse_config(j);
  }
  train::MetricsOptions mo = cfg.metrics;
  mo.groups = train::parse_metric_groups("--metrics", o.metrics);
  if (o.probe > 0) mo.probe = o.probe;
  if (o.jac_probes > 0) mo.jac_probes = o.jac_probes;
  if (!o.distribution.empty()) mo.probe_distribution = train::parse_probe_distribution("--probe-distribution", o.distribution);
  if (!o.probe_split.empty()) mo.probe_split = train::parse_probe_split("--probe-split", o.probe_split);
  if (!o.curvature_bn.empty()) mo.curvature_bn = train::parse_curvature_bn("--curvature-bn", o.curvature_bn);
  mo.validate();

  use_backend(cfg, backend_kind);
  const auto data = load_datasets(cfg.data, cfg.seed);
  const NetworkSpec spec = build_network(cfg, data.train);
  auto backend = make_backend(cfg, spec);
  backend->load_state(file);
  const std::int64_t epoch = metadata_int(file, "epoch"), iteration = metadata_int(file, "iteration");
  const std::int64_t per_epoch = std::max<std::int64_t>(1, std::int64_t(data.train.size()) / cfg.batch_size);
  const double lr = optim::lr_at(cfg.schedule, std::max<std::int64_t>(iteration - 1, 0), per_epoch);

  const data::Dataset& probe_set = mo.probe_split == train::ProbeSplit::train ? data.train : data.test;
  nlohmann::ordered_json metrics;
  for (const auto& [name, value] : train::measure_on_probe(*backend, probe_set, mo, lr, cfg.seed, std::uint64_t(epoch)))
    metrics[name] = value;
  if (mo.groups.has(train::MetricGroup::gap) || mo.groups.has(train::MetricGroup::train_eval)) {
    const auto test = train::evaluate(*backend, data.test, cfg.eval_batch_size);
    const auto tr = train::evaluate(*backend, data.train, cfg.eval_batch_size);
    metrics["test_loss"] = test.loss();
    metrics["test_acc"] = test.accuracy();
    metrics["train_eval_loss"] = tr.loss();
    metrics["train_eval_acc"] = tr.accuracy();
    if (mo.groups.has(train::MetricGroup::gap)) metrics["gen_gap"] = test.loss() - tr.loss();
  }
  const int probe_n = train::probe_size(probe_set, mo);
  if (o.format == "json") {
    nlohmann::ordered_json j{{"checkpoint", ckpt.string()}, {"epoch", epoch}, {"iteration", iteration}, {"lr", lr},
                             {"groups", train::to_string(mo.groups)}, {"probe", probe_n},
                             {"probe_split", train::to_string(mo.probe_split)},
                             {"curvature_bn", train::to_string(mo.curvature_bn)}, {"metrics", metrics}};
    fmt::print("{}\n", j.dump(2));
  } else {
    fmt::print("{}: epoch {}, iteration {}, lr {:g}, probe set {} {} examples (BN {}), groups {}\n", ckpt.string(),
               epoch, iteration, lr, probe_n, train::to_string(mo.probe_split), train::to_string(mo.curvature_bn),
               train::to_string(mo.groups));
    std::size_t width = 0;
    for (const auto& [k, v] : metrics.items()) width = std::max(width, k.size());
    for (const auto& [k, v] : metrics.items()) {
      const double x = v.get<double>();  // NaN: not applicable, null in JSON (common/train/measure.hpp)
      fmt::print("  {:<{}}  {}\n", k, width, std::isnan(x) ? std::string("null") : fmt::format("{:.6g}", x));
    }
  }
  return 0;
}

}  // namespace wdlab::app

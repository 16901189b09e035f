#include "common/train/epoch_metrics.hpp"

#include <algorithm>
#include <array>

#include <fmt/format.h>

#include "common/errors.hpp"
#include "common/train/metrics_log.hpp"
#include "common/train/rotation.hpp"
#include "common/train/trainer.hpp"

namespace wdlab::train {

namespace {

struct GroupName {
  MetricGroup group;
  const char* name;
  const char* help;
};

constexpr std::array<GroupName, all_metric_groups.size()> kGroups{{
    {MetricGroup::norms, "norms", "norm.<param> = |W_l| (default)"},
    {MetricGroup::elr, "elr", "elr.<param> = lr/|W_l|^2, elr_opt.<param> the optimizer's own form (default)"},
    {MetricGroup::damping, "damping", "damping_eff.<param> = lambda*|W_l|^2, damping_frac.<param> (K-FAC only)"},
    {MetricGroup::jacobian, "jacobian", "jac_norm = E|J_x|_F^2 on the probe set, exact (K backward passes)"},
    {MetricGroup::jacobian_est, "jacobian_est", "jac_norm_est: random-projection estimate (jac_probes passes)"},
    {MetricGroup::gn, "gn", "kfac_gn_norm (exact GN output factors), gn_norm = theta^T G theta exact"},
    {MetricGroup::trace, "trace", "gn_trace.<param>, fisher_trace.<param> at normalized weights (+ _exact, dense)"},
    {MetricGroup::gap, "gap", "gen_gap = test_loss - train loss (default)"},
    {MetricGroup::train_eval, "train_eval", "train_eval_loss/acc: training set in eval mode (gen_gap uses it)"},
    {MetricGroup::rotation, "rotation",
     "rot.<param> = mean angle(theta_t, theta_t+1) per step, grad_ratio.<param> = mean |g|/|W|,\n"
     "               rot_pred.<param>, elr_pred.<param>: the equilibrium predictions (SGD, AdamW)"},
}};

constexpr bool every_group_has_its_name() {
  if (kGroups.size() != all_metric_groups.size()) return false;
  for (std::size_t i = 0; i < kGroups.size(); ++i)
    if (kGroups[i].group != all_metric_groups[i]) return false;
  return true;
}
static_assert(every_group_has_its_name(), "kGroups must name every MetricGroup, in the order of all_metric_groups");

}  // namespace

MetricGroups default_metric_groups() {
  MetricGroups g;
  return g.add(MetricGroup::norms).add(MetricGroup::elr).add(MetricGroup::gap);
}

MetricGroups parse_metric_groups(const std::string& field, const std::string& list) {
  MetricGroups g;
  std::size_t start = 0;
  while (start <= list.size()) {
    const std::size_t comma = std::min(list.find(',', start), list.size());
    const std::string item = list.substr(start, comma - start);
    start = comma + 1;
    if (item.empty()) continue;
    if (item == "all") {
      for (MetricGroup e : all_metric_groups) g.add(e);
    } else if (item == "default") {
      g.bits |= default_metric_groups().bits;
    } else if (item != "none") {
      const auto it = std::find_if(kGroups.begin(), kGroups.end(), [&](const GroupName& e) { return item == e.name; });
      if (it == kGroups.end()) {
        std::string known;
        for (const auto& e : kGroups) known += std::string(known.empty() ? "" : ", ") + e.name;
        throw UsageError(field, fmt::format("unknown metric group '{}' (known: {}, all, default, none)", item, known));
      }
      g.add(it->group);
    }
  }
  return g;
}

std::string to_string(MetricGroups g) {
  std::string s;
  for (const auto& e : kGroups)
    if (g.has(e.group)) s += std::string(s.empty() ? "" : ",") + e.name;
  return s.empty() ? "none" : s;
}

std::string metric_groups_help() {
  std::string s;
  for (const auto& e : kGroups) s += fmt::format("  {:<13}{}\n", e.name, e.help);
  return s;
}

std::string to_string(ProbeDistribution d) { return d == ProbeDistribution::rademacher ? "rademacher" : "gaussian"; }

ProbeDistribution parse_probe_distribution(const std::string& field, const std::string& s) {
  if (s == "rademacher") return ProbeDistribution::rademacher;
  if (s == "gaussian") return ProbeDistribution::gaussian;
  throw UsageError(field, fmt::format("expected rademacher or gaussian, got '{}'", s));
}

std::string to_string(ProbeSplit s) { return s == ProbeSplit::train ? "train" : "test"; }

ProbeSplit parse_probe_split(const std::string& field, const std::string& s) {
  if (s == "train") return ProbeSplit::train;
  if (s == "test") return ProbeSplit::test;
  throw UsageError(field, fmt::format("expected train or test, got '{}'", s));
}

std::string to_string(CurvatureBn m) { return m == CurvatureBn::eval ? "eval" : "batch"; }

CurvatureBn parse_curvature_bn(const std::string& field, const std::string& s) {
  if (s == "eval") return CurvatureBn::eval;
  if (s == "batch") return CurvatureBn::batch;
  throw UsageError(field, fmt::format("expected eval or batch, got '{}'", s));
}

bool uses_probe(MetricGroups g) {
  return g.has(MetricGroup::jacobian) || g.has(MetricGroup::jacobian_est) || g.has(MetricGroup::gn) ||
         g.has(MetricGroup::trace);
}

void MetricsOptions::validate() const {
  if (probe < 1) throw UsageError("metrics.probe", fmt::format("must be >= 1, got {}", probe));
  if (jac_probes < 1) throw UsageError("metrics.jac_probes", fmt::format("must be >= 1, got {}", jac_probes));
}

NamedValues norm_targets(const NormTransfer& t, int epoch) {
  const auto file = (t.source / "metrics.jsonl").string();
  if (!std::filesystem::exists(file)) throw DataError(file, "does not exist (wn.norms_from names a run directory)");
  for (const auto& row : MetricsLog(t.source).rows()) {
    if (row.contains("event") || !row.contains("epoch") || row["epoch"] != epoch) continue;  // epoch rows only
    NamedValues out;
    for (const auto& p : t.params) {
      const std::string key = "norm." + p;
      if (!row.contains(key) || !row[key].is_number())
        throw DataError(file, fmt::format("epoch {} has no number '{}' (the source run must log the norms group)",
                                          epoch, key));
      out.emplace_back(p, row[key].get<double>());
    }
    return out;
  }
  throw DataError(file, fmt::format("has no row for epoch {} (the source run is shorter or still running)", epoch));
}

void check_norm_transfer(const NormTransfer& t) {
  if (t.active()) (void)norm_targets(t, 1);
}

void apply_norm_transfer(Backend& backend, const NormTransfer& t, int epoch) {
  if (t.active()) backend.rescale_weights(norm_targets(t, epoch));
}

const data::Dataset& probe_source(const Datasets& data, ProbeSplit split) {
  return split == ProbeSplit::train ? data.train : data.test;
}

int probe_size(const data::Dataset& probe_set, const MetricsOptions& opts) {
  return int(std::min<std::size_t>(std::size_t(opts.probe), probe_set.size()));
}

NamedValues measure_on_probe(Backend& backend, const data::Dataset& probe_set, const MetricsOptions& opts,
                             double lr, std::uint64_t seed, std::uint64_t rng_step, const RotationMeter* epoch_steps,
                             std::int64_t iteration) {
  MetricGroups backend_groups = opts.groups;  // gap and train_eval are the trainer's
  backend_groups.bits &= ~(unsigned(MetricGroup::gap) | unsigned(MetricGroup::train_eval));
  if (backend_groups.bits == 0) return {};
  const std::size_t n = std::size_t(probe_size(probe_set, opts));
  const std::size_t sz = probe_set.image_size();
  std::vector<float> images(n * sz);
  std::vector<std::int32_t> labels(n);
  for (std::size_t i = 0; i < n; ++i) {
    std::copy_n(probe_set.image(i), sz, images.begin() + std::ptrdiff_t(i * sz));
    labels[i] = probe_set.labels[i];
  }
  MeasureRequest req;
  req.groups = backend_groups;
  req.curvature_bn = opts.curvature_bn;
  req.lr = lr;
  req.jac_probes = opts.jac_probes;
  req.probe_distribution = opts.probe_distribution;
  req.seed = seed;
  req.rng_step = rng_step;
  const HostBatch probe{images, labels, int(n)};
  const MeasureSummary summary = backend.measure_summary(probe, req);
  NamedValues out = metric_rows(summary, req);
  if (records_weight_steps(backend_groups)) {
    // Last: the measurement step changes the backend's state until it is restored.
    const RotationMeter steps = epoch_steps ? *epoch_steps : one_step_rotation(backend, probe, lr, iteration);
    for (auto& row : rotation_rows(summary, steps, lr)) out.push_back(std::move(row));
  }
  return out;
}

void add_epoch_metrics(Backend& backend, const Datasets& data, const TrainerConfig& cfg, double lr, int epoch,
                       const RotationMeter& epoch_steps, nlohmann::ordered_json& row, ProbeColumns columns) {
  const MetricsOptions& m = cfg.metrics;
  const data::Dataset& probe_set = probe_source(data, m.probe_split);
  if (uses_probe(m.groups) && columns == ProbeColumns::record) {
    row["probe_split"] = to_string(m.probe_split);
    row["probe_n"] = probe_size(probe_set, m);
    row["curvature_bn"] = to_string(m.curvature_bn);
  }
  for (const auto& [name, value] : measure_on_probe(backend, probe_set, m, lr, cfg.seed, std::uint64_t(epoch), &epoch_steps))
    row[name] = value;
  double train_loss = row["train_loss"].get<double>();
  if (m.groups.has(MetricGroup::train_eval)) {
    const EvalStats tr = evaluate(backend, data.train, DataSplit::train, cfg.eval_batch_size);
    row["train_eval_loss"] = tr.loss();
    row["train_eval_acc"] = tr.accuracy();
    train_loss = tr.loss();
  }
  if (m.groups.has(MetricGroup::gap)) row["gen_gap"] = row["test_loss"].get<double>() - train_loss;
}

}  // namespace wdlab::train

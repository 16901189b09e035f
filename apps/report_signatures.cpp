// The signature rules of apps/report_rules.hpp applied to runs (report_signatures.hpp). Each
// function below computes one rule's quantity per seed exactly as the rule's comment states it.
#include "apps/report_signatures.hpp"

#include <algorithm>
#include <map>
#include <set>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "apps/report_rules.hpp"
#include "apps/report_seeds.hpp"
#include "apps/report_tables.hpp"

namespace wdlab::app {

namespace {

std::string what(const RunRecord& r) {
  return fmt::format("{}: {} {}{}, {} ({} epochs)", r.group, r.dataset_label(), r.network_label(), r.bn() ? " BN" : "",
                     r.optimizer(), r.epochs());
}

/// The last epoch row (event rows, which carry "event", are not epoch rows), or null.
const nlohmann::ordered_json* last_epoch_row(const RunRecord& r) {
  for (auto it = r.rows.rbegin(); it != r.rows.rend(); ++it)
    if (!it->contains("event")) return &*it;
  return nullptr;
}

double num(const nlohmann::ordered_json& row, const std::string& key) {
  return row.contains(key) && row[key].is_number() ? row[key].get<double>() : kNaN;
}

/// The first and last finite values of a series, its finite min and max.
struct SeriesEnds {
  double first = kNaN, last = kNaN, min = kNaN, max = kNaN;
};
SeriesEnds ends(const std::vector<double>& v) {
  SeriesEnds e;
  for (double x : v) {
    if (!std::isfinite(x)) continue;
    if (std::isnan(e.first)) e.first = e.min = e.max = x;
    e.last = x;
    e.min = std::min(e.min, x);
    e.max = std::max(e.max, x);
  }
  return e;
}

/// The first run of a family (any seed, any class), to read what the family is.
const RunRecord* any_run(const SeedRuns& m) {
  for (const auto& [seed, regs] : m)
    for (const auto& [reg, r] : regs) return r;
  return nullptr;
}

/// The first key with `prefix` among the runs of class `reg` (in seed order), or "".
std::string first_key_of(const SeedRuns& m, const std::string& reg, const std::string& prefix) {
  for (const auto& [seed, regs] : m)
    if (const RunRecord* r = run_of(regs, reg))
      if (const std::string k = r->first_key(prefix); !k.empty()) return k;
  return "";
}

nlohmann::ordered_json spread_json(const Spread& s) {
  return {{"gmean", s.gmean}, {"min", s.min}, {"max", s.max}, {"n", s.n}, {"left_out", s.left_out}};
}

const char* verdict(bool measured, bool holds) { return !measured ? kNotMeasured : holds ? kShows : kDoesNotShow; }

class Builder {
 public:
  void add(SignatureRow row) { rows_.push_back(std::move(row)); }
  void none_found(const std::string& id, const std::string& needs) {
    add({id, "—", "no setting found: " + needs, kNotMeasured, {}});
  }
  std::vector<SignatureRow> take() { return std::move(rows_); }

 private:
  std::vector<SignatureRow> rows_;
};

// --- I.1 and I.2: BN network + SGD ----------------------------------------------------------------

bool is_bn_sgd(const SeedRuns& m) {
  const RunRecord* r = any_run(m);
  return r && r->bn() && r->optimizer() == "sgd";
}

/// I.1: R_s = (elr/lr, last row, wd) / (elr/lr, last row, none).
void elr_ratio(const std::map<std::string, SeedRuns>& fams, Builder& b) {
  bool any = false;
  for (const auto& [fk, m] : fams) {
    if (!is_bn_sgd(m)) continue;
    const std::string key = first_key_of(m, "none", "elr.");
    std::vector<double> ratios;
    bool paired = false;
    for (const auto& [seed, regs] : m) {
      const RunRecord *none = run_of(regs, "none"), *wd = run_of(regs, "wd");
      if (!none || !wd) continue;
      paired = true;
      const auto elr_over_lr = [&](const RunRecord& r) {
        double lr = r.last("lr");
        if (std::isnan(lr)) lr = r.cfg_num("lr");
        return r.last(key) / lr;  // = 1/‖θ‖² at the last row
      };
      ratios.push_back(key.empty() ? kNaN : elr_over_lr(*wd) / elr_over_lr(*none));
    }
    if (!paired) continue;
    any = true;
    const Spread s = spread_of(ratios);
    const bool holds = s.gmean >= rules::kElrRatioGeomean && s.min > rules::kElrRatioMin;
    b.add({"I.1", what(*any_run(m)) + (key.empty() ? "" : ", layer " + key.substr(4)),
           "R = ELR(wd)/ELR(none) at the last row (schedule divided out): " + fmt_spread(s), verdict(s.n > 0, holds),
           {{"layer", key.empty() ? "" : key.substr(4)}, {"R", spread_json(s)}, {"R_per_seed", ratios}}});
  }
  if (!any) b.none_found("I.1", "a BN + SGD family with runs none and wd of the same seed, logging elr.*");
}

/// I.2: per seed, the median over layers of q = rot/rot_pred at the wd run's last row.
void rotation_equilibrium(const std::map<std::string, SeedRuns>& fams, Builder& b) {
  bool any = false;
  for (const auto& [fk, m] : fams) {
    if (!is_bn_sgd(m)) continue;
    std::vector<double> medians;
    std::size_t layers = 0;
    for (const auto& [seed, regs] : m) {
      const RunRecord* wd = run_of(regs, "wd");
      if (!wd) continue;
      any = true;
      const auto* row = last_epoch_row(*wd);
      std::vector<double> q;
      if (row)
        for (const auto& [k, v] : row->items()) {
          if (k.rfind("rot_pred.", 0) != 0 || !v.is_number()) continue;
          q.push_back(num(*row, "rot." + k.substr(9)) / v.get<double>());
        }
      layers = std::max(layers, q.size());
      medians.push_back(median(q));
    }
    if (medians.empty()) continue;
    const Spread s = spread_of(medians);
    const bool holds = s.n > 0 && s.min >= rules::kRotationLow && s.max <= rules::kRotationHigh;
    b.add({"I.2", what(*any_run(m)) + fmt::format(", wd run, {} layers with rot_pred", layers),
           "median over layers of q = rot/rot_pred at the last row, per seed: " + fmt_spread(s, false),
           verdict(s.n > 0, holds), {{"median_q", spread_json(s)}, {"median_q_per_seed", medians}}});
  }
  if (!any) b.none_found("I.2", "a BN + SGD family with a wd run logging rot.* and rot_pred.*");
}

// --- II.1 and II.2: no BN -------------------------------------------------------------------------

double jac(const RunRecord& r) {
  const double j = r.last("jac_norm");
  return std::isnan(j) ? r.last("jac_norm_est") : j;
}

/// II.1: F = jac(none)/jac(wd) per optimizer and seed; the networks compared across optimizers.
void jacobian_factor(const std::map<std::string, SeedRuns>& fams, Builder& b) {
  std::map<std::string, std::map<std::string, std::vector<double>>> factors;  // network -> optimizer -> F_s
  for (const auto& [fk, m] : fams) {
    const RunRecord* r0 = any_run(m);
    if (!r0 || r0->bn() || (r0->optimizer() != "sgd" && r0->optimizer() != "kfac-g")) continue;
    const std::string net = fmt::format("{}: {} {}{}, no BN", r0->group, r0->dataset_label(), r0->network_label(),
                                        r0->augment() ? " +aug" : "");
    for (const auto& [seed, regs] : m) {
      const RunRecord *none = run_of(regs, "none"), *wd = run_of(regs, "wd");
      if (none && wd) factors[net][r0->optimizer()].push_back(jac(*none) / jac(*wd));
    }
  }
  bool any = false;
  for (const auto& [net, by] : factors) {
    if (!by.count("sgd") || !by.count("kfac-g")) continue;
    any = true;
    const Spread fs = spread_of(by.at("sgd")), fk = spread_of(by.at("kfac-g"));
    const bool measured = fs.n > 0 && fk.n > 0;
    const bool holds = fk.gmean >= rules::kJacobianGeomeanFactor * fs.gmean && fk.min > fs.max;
    b.add({"II.1", net,
           "WD reduces ‖J_x‖²_F by F (none/wd, last row): K-FAC-G " + fmt_spread(fk) + "; SGD " + fmt_spread(fs),
           verdict(measured, holds),
           {{"F_kfac_g", spread_json(fk)}, {"F_sgd", spread_json(fs)}, {"F_kfac_g_per_seed", by.at("kfac-g")},
            {"F_sgd_per_seed", by.at("sgd")}}});
  }
  if (!any)
    b.none_found("II.1", "a no-BN network with runs none and wd under both SGD and K-FAC-G, logging jac_norm");
}

/// II.2: Pearson r(log kfac_gn_norm, log jac_norm) over an experiment's runs.
void gn_jacobian(const std::vector<RunRecord>& runs, Builder& b) {
  std::map<std::string, std::vector<const RunRecord*>> by_group;
  for (const auto& r : runs)
    if (r.last("kfac_gn_norm") > 0 && jac(r) > 0) by_group[r.group].push_back(&r);
  for (const auto& [g, rs] : by_group) {
    std::vector<double> gn, jn, gap;
    std::map<std::int64_t, std::pair<std::vector<double>, std::vector<double>>> per_seed;
    for (const auto* r : rs) {
      gn.push_back(std::log10(r->last("kfac_gn_norm")));
      jn.push_back(std::log10(jac(*r)));
      const double gp = r->last("gen_gap");
      gap.push_back(std::isnan(gp) ? r->last("test_loss") - r->last("train_loss") : gp);
      per_seed[r->seed()].first.push_back(gn.back());
      per_seed[r->seed()].second.push_back(jn.back());
    }
    const double r1 = pearson(gn, jn), r2 = pearson(gn, gap), r3 = pearson(jn, gap);
    std::string seeds_text;
    nlohmann::ordered_json j{{"group", g}, {"n", rs.size()}, {"seeds", per_seed.size()}, {"r_gn_jac", r1},
                             {"r_gn_gap", r2}, {"r_jac_gap", r3}};
    if (int(per_seed.size()) >= rules::kPerSeedRMinSeeds) {
      double lo = kNaN, hi = kNaN;
      for (const auto& [seed, xy] : per_seed) {
        const double r = pearson(xy.first, xy.second);
        if (std::isnan(r)) continue;
        lo = std::isnan(lo) ? r : std::min(lo, r);
        hi = std::isnan(hi) ? r : std::max(hi, r);
      }
      j["r_gn_jac_per_seed_min"] = lo;
      j["r_gn_jac_per_seed_max"] = hi;
      seeds_text = fmt::format("; per seed r {}–{} ({} seeds)", fmt_num(lo, 3), fmt_num(hi, 3), per_seed.size());
    } else {
      seeds_text = per_seed.size() == 1 ? "; 1 seed: no spread" : fmt::format("; {} seeds: no per-seed r", per_seed.size());
    }
    const bool enough = int(rs.size()) >= rules::kGnJacobianMinPoints;
    const bool measured = enough && !std::isnan(r1);
    // Too few points: the reason comes first, so that the row does not read as a failed Fig. 5 (the
    // laptop suite's `search`, e.g., has one final run per grid).
    const std::string why =
        enough ? ""
               : fmt::format("not judged: only {} points (runs of this experiment logging kfac_gn_norm and jac_norm), "
                             "the rule needs ≥ {} networks/seeds, as Fig. 5's experiment has; ",
                             rs.size(), rules::kGnJacobianMinPoints);
    b.add({"II.2", fmt::format("{}: {} runs", g, rs.size()),
           fmt::format("{}Pearson r(log GN_KFAC, log ‖J‖²) = {}{}; beside it (no verdict): r(log GN, gap) = {}, "
                       "r(log ‖J‖², gap) = {}",
                       why, fmt_num(r1, 3), seeds_text, fmt_num(r2, 3), fmt_num(r3, 3)),
           verdict(measured, r1 > rules::kGnJacobianR), j});
  }
  if (by_group.empty()) b.none_found("II.2", "runs logging kfac_gn_norm and jac_norm");
}

// --- III.1 and III.2: BN network + K-FAC-F ------------------------------------------------------------

bool is_bn_kfac_f(const SeedRuns& m) {
  const RunRecord* r = any_run(m);
  return r && r->bn() && r->optimizer() == "kfac-f";
}

/// D = damping_eff at the last row / at the first row that has it.
double damping_growth(const RunRecord* r, const std::string& key) {
  if (!r || key.empty()) return kNaN;
  const SeriesEnds e = ends(r->series(key));
  return e.last / e.first;
}

/// III.1: ratio_s = D_none,s / D_wd,s; D of the run with WD on the non-BN layers only beside it.
void damping_growth_ratio(const std::map<std::string, SeedRuns>& fams, Builder& b) {
  bool any = false;
  for (const auto& [fk, m] : fams) {
    if (!is_bn_kfac_f(m)) continue;
    std::string key = first_key_of(m, "none", "damping_eff.");
    if (key.empty()) key = first_key_of(m, "wd", "damping_eff.");
    std::vector<double> ratios, d_none, d_wd, d_part, frac_none, frac_wd;
    for (const auto& [seed, regs] : m) {
      const RunRecord *none = run_of(regs, "none"), *wd = run_of(regs, "wd");
      const RunRecord* part = run_of(regs, "wd-fc") ? run_of(regs, "wd-fc") : run_of(regs, "wd-list");
      if (part) d_part.push_back(damping_growth(part, key));
      if (!none || !wd) continue;
      d_none.push_back(damping_growth(none, key));
      d_wd.push_back(damping_growth(wd, key));
      ratios.push_back(d_none.back() / d_wd.back());
      if (!key.empty()) {
        const std::string fkey = "damping_frac." + key.substr(12);
        frac_none.push_back(none->last(fkey));
        frac_wd.push_back(wd->last(fkey));
      }
    }
    if (ratios.empty()) continue;
    any = true;
    const Spread s = spread_of(ratios), sn = spread_of(d_none), sw = spread_of(d_wd), sp = spread_of(d_part);
    const bool holds = s.gmean >= rules::kDampingRatioGeomean && s.min > rules::kDampingRatioMin;
    std::string text = "growth D = λ‖θ‖² last/first: none " + fmt_spread(sn) + ", wd " + fmt_spread(sw) +
                       "; ratio D_none/D_wd " + fmt_spread(s) + "; beside it (no verdict): WD on the non-BN layers only " +
                       (sp.n > 0 ? "D " + fmt_spread(sp) : std::string("not run"));
    const Spread fn = spread_of(frac_none), fw = spread_of(frac_wd);
    if (fn.n > 0 || fw.n > 0)
      text += "; damping fraction at the last row: none " + fmt_spread(fn, false) + ", wd " + fmt_spread(fw, false);
    b.add({"III.1", what(*any_run(m)) + (key.empty() ? "" : ", layer " + key.substr(12)), text, verdict(s.n > 0, holds),
           {{"layer", key.empty() ? "" : key.substr(12)}, {"ratio", spread_json(s)}, {"ratio_per_seed", ratios},
            {"D_none", spread_json(sn)}, {"D_wd", spread_json(sw)}, {"D_wd_non_bn", spread_json(sp)},
            {"damping_frac_none", spread_json(fn)}, {"damping_frac_wd", spread_json(fw)}}});
  }
  if (!any) b.none_found("III.1", "a BN + K-FAC-F family with runs none and wd of the same seed, logging damping_eff.*");
}

/// III.2: in each seed's none run, Fisher fall (first/last) against GN span (max/min).
void trace_fall(const std::map<std::string, SeedRuns>& fams, Builder& b) {
  bool any = false;
  for (const auto& [fk, m] : fams) {
    if (!is_bn_kfac_f(m)) continue;
    const std::string key = first_key_of(m, "none", "fisher_trace.");
    std::vector<double> falls, spans, margins;
    for (const auto& [seed, regs] : m) {
      const RunRecord* none = run_of(regs, "none");
      if (!none) continue;
      any = true;
      const SeriesEnds f = key.empty() ? SeriesEnds{} : ends(none->series(key));
      const SeriesEnds g = key.empty() ? SeriesEnds{} : ends(none->series("gn_trace." + key.substr(13)));
      falls.push_back(f.first / f.last);
      spans.push_back(g.max / g.min);
      margins.push_back(falls.back() / (rules::kFisherFallOverGnSpan * spans.back()));  // > 1 ⇔ the rule holds
    }
    if (falls.empty()) continue;
    const Spread sf = spread_of(falls), sg = spread_of(spans), sm = spread_of(margins);
    const bool measured = sm.n > 0;
    const bool holds = sm.min > 1;  // in every measured seed
    b.add({"III.2", what(*any_run(m)) + ", none run" + (key.empty() ? "" : ", layer " + key.substr(13)),
           "‖F(θ̂)‖ first/last " + fmt_spread(sf) + "; ‖G(θ̂)‖ max/min " + fmt_spread(sg) +
               "; fall/(10 × span), > 1 where the rule holds: " + fmt_spread(sm),
           verdict(measured, holds),
           {{"layer", key.empty() ? "" : key.substr(13)}, {"fisher_fall", spread_json(sf)}, {"gn_span", spread_json(sg)},
            {"fisher_fall_per_seed", falls}, {"gn_span_per_seed", spans}}});
  }
  if (!any) b.none_found("III.2", "a BN + K-FAC-F family with a none run logging fisher_trace.* and gn_trace.*");
}

const rules::Rule& rule(const std::string& id) {
  for (const auto& r : rules::kRules)
    if (id == r.id) return r;
  return rules::kRules[0];  // unreachable: every id above is in kRules
}

}  // namespace

Signatures measure_signatures(const std::vector<RunRecord>& runs) {
  std::vector<std::string> collisions;
  const auto fams = families_by_seed(runs, &collisions);
  Builder b;
  elr_ratio(fams, b);
  rotation_equilibrium(fams, b);
  jacobian_factor(fams, b);
  gn_jacobian(runs, b);
  damping_growth_ratio(fams, b);
  trace_fall(fams, b);

  Signatures s;
  s.rows = b.take();
  s.json = {{"rules", nlohmann::ordered_json::array()}, {"rows", nlohmann::ordered_json::array()}};
  for (const auto& r : rules::kRules)
    s.json["rules"].push_back({{"id", r.id}, {"mechanism", r.mechanism}, {"paper", r.paper}, {"rule", r.rule}});
  auto& md = s.markdown;
  md += "Rules and thresholds fixed before the final runs (apps/report_rules.hpp, README \"Pre-registered signature "
        "rules\"). Runs are paired by family and seed; factors are the geometric mean over seeds with their range. "
        "A signature measured on one seed says \"1 seed: no spread\"; its verdict still follows the rule on that "
        "seed.\n\n"
        "| id | mechanism | paper | setting | measured (spread over seeds) | rule | verdict |\n"
        "|---|---|---|---|---|---|---|\n";
  s.json["collisions"] = collisions;
  for (const auto& row : s.rows) {
    const rules::Rule& r = rule(row.id);
    md += fmt::format("| {} | {} | {} | {} | {} | {} | **{}** |\n", row.id, r.mechanism, r.paper, row.setting,
                      row.measured, r.rule, row.verdict);
    nlohmann::ordered_json j{{"id", row.id},         {"mechanism", r.mechanism}, {"paper", r.paper},
                             {"setting", row.setting}, {"measured", row.measured}, {"rule", r.rule},
                             {"verdict", row.verdict}};
    j["numbers"] = row.numbers;
    s.json["rows"].push_back(j);
  }
  if (!collisions.empty()) {
    // Runs that differ only in what family() leaves out (epochs, subset, lr) pair as one: say so.
    md += fmt::format("\n**Warning**: {} run(s) share family, seed and regularization class with another; the "
                      "signatures use the later one: {}.\n",
                      collisions.size(), fmt::join(collisions, "; "));
  }
  return s;
}

}  // namespace wdlab::app

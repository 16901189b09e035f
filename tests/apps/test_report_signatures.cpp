// The pre-registered signature rules (apps/report_rules.hpp) on synthetic run directories
// (config.json, metrics.jsonl, DONE) written here with values chosen so that each rule's verdict is
// known from the rule's text: shows, does not show on each side of each threshold (the negative
// controls), not measured where a run or metric is missing. Expected factors are computed here
// from the values written, never read back from the code under test.
#include <cmath>
#include <fstream>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "../support/temp_dir.hpp"
#include "apps/report.hpp"
#include "apps/report_accuracy.hpp"
#include "apps/report_runs.hpp"
#include "apps/report_signatures.hpp"

using namespace wdlab;
using Json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

/// A config of the family the rules look for. reg: none | wd | wd-fc.
Json config(bool bn, const std::string& opt, int seed, const std::string& reg, int width = 32) {
  return {{"dataset", "fashion-mnist"},
          {"model", "mlp"},
          {"arch", {{"depth", 2}, {"width", width}, {"batchnorm", bn}}},
          {"optimizer", opt},
          {"batch_size", 128},
          {"lr", 0.1},
          {"seed", seed},
          {"regularization", reg == "none" ? "none" : "wd"},
          {"weight_decay", reg == "none" ? 0.0 : 5e-4},
          {"wd_scope", reg == "wd-fc" ? "fc" : "all"}};
}

/// Writes root/<group>/<name>-s<seed> as a finished run (the group is the run's experiment).
void write_run(const fs::path& root, const std::string& name, const Json& cfg, const std::vector<Json>& rows,
               double test_acc = 0.8, const std::string& group = "exp") {
  const fs::path dir = root / group / (name + "-s" + std::to_string(cfg["seed"].get<int>()));
  fs::create_directories(dir);
  std::ofstream(dir / "config.json") << cfg.dump(2);
  std::ofstream m(dir / "metrics.jsonl");
  for (const auto& r : rows) m << r.dump() << "\n";
  std::ofstream(dir / "DONE") << Json{{"test_acc", test_acc}}.dump();
}

app::Signatures signatures(const fs::path& root) { return app::measure_signatures(app::load_runs({root / "exp"})); }

std::vector<app::SignatureRow> rows_of(const app::Signatures& s, const std::string& id) {
  std::vector<app::SignatureRow> out;
  for (const auto& r : s.rows)
    if (r.id == id) out.push_back(r);
  return out;
}

/// The verdict of the one row of rule `id` (fails the test when there is not exactly one).
std::string verdict_of(const app::Signatures& s, const std::string& id) {
  const auto rs = rows_of(s, id);
  REQUIRE_MESSAGE(rs.size() == 1, id);
  INFO(id, ": ", rs[0].setting, " | ", rs[0].measured);
  return rs[0].verdict;
}

double geomean(const std::vector<double>& v) {
  double p = 1;
  for (double x : v) p *= x;
  return std::pow(p, 1.0 / double(v.size()));
}

// --- I.1: ELR ratio. elr = lr/‖θ‖²; the rule reads elr/lr = 1/‖θ‖² at the last row. ---------------
// Seeds' none runs get 1/‖θ‖² = base[s] at the end, the wd runs base[s]·R[s]; the second layer has
// ratio 1 everywhere (only the first elr.* layer counts).
fs::path elr_scenario(const test::TempDir& t, const std::vector<double>& R, bool with_elr = true) {
  const std::vector<double> base = {1.0, 50.0, 0.02, 3.0};  // seeds differ a lot: pairing by seed matters
  for (std::size_t s = 0; s < R.size(); ++s) {
    for (const char* reg : {"none", "wd"}) {
      const double inv = base[s] * (std::string(reg) == "wd" ? R[s] : 1.0);
      Json r0 = {{"epoch", 0}, {"lr", 0.1}}, r1 = {{"epoch", 5}, {"lr", 0.01}};
      if (with_elr) {
        r0["elr.fc0.weight"] = 0.1 * 1.0, r0["elr.fc1.weight"] = 0.1;
        r1["elr.fc0.weight"] = 0.01 * inv, r1["elr.fc1.weight"] = 0.01 * base[s];
      }
      write_run(t.path(), std::string("mech1-") + reg, config(true, "sgd", int(s) + 1, reg), {r0, r1});
    }
  }
  return t.path();
}

}  // namespace

TEST_CASE("report I.1 ELR ratio: shows iff geomean R >= 2 and min R > 1, paired by seed") {
  {
    test::TempDir t;
    const std::vector<double> R = {3, 2.5, 4};
    const auto s = signatures(elr_scenario(t, R));
    CHECK(verdict_of(s, "I.1") == "shows");
    const auto row = rows_of(s, "I.1")[0];
    CHECK(row.numbers["R"]["gmean"].get<double>() == doctest::Approx(geomean(R)).epsilon(1e-12));
    CHECK(row.numbers["R"]["n"] == 3);
    const auto per_seed = row.numbers["R_per_seed"].get<std::vector<double>>();
    REQUIRE(per_seed.size() == 3);
    for (int i = 0; i < 3; ++i) CHECK(per_seed[i] == doctest::Approx(R[i]).epsilon(1e-12));  // none s vs wd s
    CHECK(row.measured.find("×3.11 (geomean of 3 seeds, range ×2.5–×4)") != std::string::npos);
    CHECK(row.setting.find("layer fc0.weight") != std::string::npos);
  }
  {
    test::TempDir t;  // geomean below 2 (every seed > 1)
    CHECK(verdict_of(signatures(elr_scenario(t, {1.5, 1.8, 2.0})), "I.1") == "does not show");
  }
  {
    test::TempDir t;  // geomean 3.86 but one seed below 1
    CHECK(verdict_of(signatures(elr_scenario(t, {8, 8, 0.9})), "I.1") == "does not show");
  }
  {
    test::TempDir t;  // geomean 2.02 with one seed under 2 (but over 1): the rule is on the geomean
    CHECK(verdict_of(signatures(elr_scenario(t, {2.1, 1.95})), "I.1") == "shows");
  }
  {
    test::TempDir t;  // one seed: the rule on that seed, and the row says there is no spread
    const auto s = signatures(elr_scenario(t, {3}));
    CHECK(verdict_of(s, "I.1") == "shows");
    CHECK(rows_of(s, "I.1")[0].measured.find("1 seed: no spread") != std::string::npos);
  }
  {
    test::TempDir t;  // no elr.* metrics
    CHECK(verdict_of(signatures(elr_scenario(t, {3, 3}, false)), "I.1") == "not measured");
  }
  {
    test::TempDir t;  // only wd runs: nothing to pair
    write_run(t.path(), "wd", config(true, "sgd", 1, "wd"), {{{"epoch", 0}, {"lr", 0.1}, {"elr.fc0.weight", 0.1}}});
    CHECK(verdict_of(signatures(t.path()), "I.1") == "not measured");
  }
}

namespace {

// --- I.2: rotational equilibrium: per seed the median over layers of rot/rot_pred at the last row.
fs::path rotation_scenario(const test::TempDir& t, const std::vector<std::vector<double>>& q, bool with_rot = true) {
  for (std::size_t s = 0; s < q.size(); ++s) {
    Json last = {{"epoch", 3}};
    if (with_rot) {
      for (std::size_t l = 0; l < q[s].size(); ++l) {
        const double pred = 0.01 * double(l + 1);
        last["rot.fc" + std::to_string(l) + ".weight"] = q[s][l] * pred;
        last["rot_pred.fc" + std::to_string(l) + ".weight"] = pred;
      }
      last["rot.out.weight"] = 50.0;   // no prediction (not scale-invariant): not counted
      last["rot_pred.out.weight"] = nullptr;
    }
    // Earlier rows far from equilibrium, and an event row after the last epoch row.
    Json first = {{"epoch", 0}};
    if (with_rot) first["rot.fc0.weight"] = nullptr, first["rot_pred.fc0.weight"] = 1.0;
    const Json event = {{"event", "damping_raised"}, {"epoch", 3}, {"step", 40}};
    write_run(t.path(), "wd", config(true, "sgd", int(s) + 1, "wd"), {first, last, event});
  }
  return t.path();
}

}  // namespace

TEST_CASE("report I.2 rotational equilibrium: shows iff every seed's median rot/rot_pred is in [2/3, 3/2]") {
  {
    test::TempDir t;  // medians 1.0, 1.4, 0.8
    const auto s = signatures(rotation_scenario(t, {{0.9, 1.0, 1.3}, {1.4, 1.45, 0.7}, {0.7, 0.8, 2.0}}));
    CHECK(verdict_of(s, "I.2") == "shows");
    const auto med = rows_of(s, "I.2")[0].numbers["median_q_per_seed"].get<std::vector<double>>();
    REQUIRE(med.size() == 3);
    CHECK(med[0] == doctest::Approx(1.0));
    CHECK(med[1] == doctest::Approx(1.4));
    CHECK(med[2] == doctest::Approx(0.8));
    CHECK(rows_of(s, "I.2")[0].setting.find("3 layers with rot_pred") != std::string::npos);
  }
  {
    test::TempDir t;  // one seed's median 1.6 > 3/2
    CHECK(verdict_of(signatures(rotation_scenario(t, {{1.0, 1.0, 1.0}, {1.6, 1.7, 1.0}})), "I.2") == "does not show");
  }
  {
    test::TempDir t;  // one seed's median 0.6 < 2/3 (even number of layers: mean of the middle two)
    CHECK(verdict_of(signatures(rotation_scenario(t, {{1.0, 1.1}, {0.5, 0.7}})), "I.2") == "does not show");
  }
  {
    test::TempDir t;
    CHECK(verdict_of(signatures(rotation_scenario(t, {{1.0}, {1.0}}, false)), "I.2") == "not measured");
  }
}

namespace {

// --- II.1: Jacobian factor F = jac(none)/jac(wd) at the last row, per optimizer and seed. -----------
fs::path jacobian_scenario(const test::TempDir& t, const std::vector<double>& f_kfac, const std::vector<double>& f_sgd,
                           const std::string& group = "exp") {
  const auto write = [&](const std::string& opt, const std::vector<double>& F) {
    for (std::size_t s = 0; s < F.size(); ++s) {
      const double j_wd = 2.0 + double(s);
      // The first row has the opposite order: only the last row counts.
      write_run(t.path(), opt + "-none", config(false, opt, int(s) + 1, "none"),
                {{{"epoch", 0}, {"jac_norm", 1.0}}, {{"epoch", 4}, {"jac_norm", F[s] * j_wd}}}, 0.8, group);
      write_run(t.path(), opt + "-wd", config(false, opt, int(s) + 1, "wd"),
                {{{"epoch", 0}, {"jac_norm", 100.0}}, {{"epoch", 4}, {"jac_norm", j_wd}}}, 0.8, group);
    }
  };
  if (!f_kfac.empty()) write("kfac-g", f_kfac);
  if (!f_sgd.empty()) write("sgd", f_sgd);
  return t.path();
}

}  // namespace

TEST_CASE("report II.1 Jacobian factor: shows iff geomean F_kfac-g >= 1.5 geomean F_sgd and min F_kfac-g > max F_sgd") {
  {
    test::TempDir t;
    const std::vector<double> fk = {3, 3.5, 4}, fs = {1.2, 1.4, 1.3};
    const auto s = signatures(jacobian_scenario(t, fk, fs));
    CHECK(verdict_of(s, "II.1") == "shows");
    const auto n = rows_of(s, "II.1")[0].numbers;
    CHECK(n["F_kfac_g"]["gmean"].get<double>() == doctest::Approx(geomean(fk)));
    CHECK(n["F_sgd"]["gmean"].get<double>() == doctest::Approx(geomean(fs)));
    CHECK(n["F_sgd"]["max"].get<double>() == doctest::Approx(1.4));
  }
  {
    test::TempDir t;  // 2 < 1.5 × 1.5
    CHECK(verdict_of(signatures(jacobian_scenario(t, {2, 2, 2}, {1.5, 1.5, 1.5})), "II.1") == "does not show");
  }
  {
    test::TempDir t;  // geomeans far apart (5.07 vs 1.26) but the spreads overlap: 1.3 < 1.4
    CHECK(verdict_of(signatures(jacobian_scenario(t, {10, 10, 1.3}, {1.2, 1.2, 1.4})), "II.1") == "does not show");
  }
  {
    test::TempDir t;  // no K-FAC-G runs
    CHECK(verdict_of(signatures(jacobian_scenario(t, {}, {1.2, 1.3})), "II.1") == "not measured");
  }
}

TEST_CASE("report II.1: one row per experiment with Table 2's runs, each with its own verdict") {
  // Two experiments with the same network, optimizers and seeds (e.g. mech2-jacobian and
  // mech2-jacobian-deep read as the same family but for their experiment): one shows, one does not.
  // Pooled, the six K-FAC-G factors {3, 3.5, 4, 2, 2, 2} overlap SGD's {1.2 … 1.5}, so a report that
  // merged the experiments would give one row that does not show: the two verdicts are the control.
  test::TempDir t;
  const std::vector<double> fk_a = {3, 3.5, 4}, fs_a = {1.2, 1.4, 1.3}, fk_b = {2, 2, 2}, fs_b = {1.5, 1.5, 1.5};
  jacobian_scenario(t, fk_a, fs_a, "deep");
  jacobian_scenario(t, fk_b, fs_b, "shallow");
  const auto s = app::measure_signatures(app::load_runs({t.path() / "deep", t.path() / "shallow"}));
  const auto rows = rows_of(s, "II.1");
  REQUIRE(rows.size() == 2);
  int seen = 0;
  for (const auto& r : rows) {
    INFO(r.setting, " | ", r.measured);
    const bool deep = r.setting.rfind("deep:", 0) == 0, shallow = r.setting.rfind("shallow:", 0) == 0;
    REQUIRE((deep || shallow));
    seen += deep ? 1 : 2;
    CHECK(r.verdict == (deep ? "shows" : "does not show"));
    CHECK(r.numbers["F_kfac_g"]["gmean"].get<double>() == doctest::Approx(geomean(deep ? fk_a : fk_b)));
    CHECK(r.numbers["F_sgd"]["gmean"].get<double>() == doctest::Approx(geomean(deep ? fs_a : fs_b)));
    CHECK(r.numbers["F_kfac_g"]["n"] == 3);
  }
  CHECK(seen == 3);  // one row each
}

namespace {

double pearson_here(const std::vector<double>& x, const std::vector<double>& y) {
  const double n = double(x.size());
  double sx = 0, sy = 0, sxx = 0, syy = 0, sxy = 0;
  for (std::size_t i = 0; i < x.size(); ++i)
    sx += x[i], sy += y[i], sxx += x[i] * x[i], syy += y[i] * y[i], sxy += x[i] * y[i];
  return (n * sxy - sx * sy) / std::sqrt((n * sxx - sx * sx) * (n * syy - sy * sy));
}

// --- II.2: r(log kfac_gn_norm, log jac_norm) over the runs of an experiment. ------------------------
// Run i (width 16·(i/seeds+1), seed i%seeds+1) has log10 J = x[i], log10 GN = y[i].
fs::path gn_scenario(const test::TempDir& t, const std::vector<double>& x, const std::vector<double>& y, int seeds) {
  for (std::size_t i = 0; i < x.size(); ++i) {
    const int width = 16 * int(i / std::size_t(seeds) + 1), seed = int(i % std::size_t(seeds)) + 1;
    write_run(t.path(), "w" + std::to_string(width), config(false, "kfac-g", seed, "none", width),
              {{{"epoch", 3},
                {"jac_norm", std::pow(10.0, x[i])},
                {"kfac_gn_norm", std::pow(10.0, y[i])},
                {"gen_gap", 0.1 * double(i)}}});
  }
  return t.path();
}

}  // namespace

TEST_CASE("report II.2 GN norm ~ Jacobian: shows iff r > 0.5 over >= 8 points") {
  const std::vector<double> x = {0.1, 0.5, 0.9, 1.2, 1.6, 2.0, 2.3, 2.9, 3.1};
  const std::vector<double> y_pos = {1.0, 1.3, 2.1, 1.9, 2.8, 3.0, 2.7, 3.9, 3.6};
  std::vector<double> y_neg;
  for (double v : y_pos) y_neg.push_back(-v);
  {
    test::TempDir t;
    const auto s = signatures(gn_scenario(t, x, y_pos, 3));
    CHECK(verdict_of(s, "II.2") == "shows");
    const auto n = rows_of(s, "II.2")[0].numbers;
    CHECK(n["n"] == 9);
    CHECK(n["r_gn_jac"].get<double>() == doctest::Approx(pearson_here(y_pos, x)).epsilon(1e-9));
    CHECK(n.contains("r_gn_jac_per_seed_min"));  // 3 seeds of 3 networks each: r per seed
    CHECK(rows_of(s, "II.2")[0].measured.find("per seed r") != std::string::npos);
    CHECK(rows_of(s, "II.2")[0].measured.find("not judged") == std::string::npos);  // control for the case below
  }
  {
    test::TempDir t;  // anti-correlated
    CHECK(verdict_of(signatures(gn_scenario(t, x, y_neg, 3)), "II.2") == "does not show");
  }
  {
    test::TempDir t;  // 6 points: fewer than the rule needs, even though r is high
    const auto s = signatures(gn_scenario(t, {x.begin(), x.begin() + 6}, {y_pos.begin(), y_pos.begin() + 6}, 3));
    CHECK(verdict_of(s, "II.2") == "not measured");
    // The reason comes first: too few points for the rule, not a failed Fig. 5.
    CHECK(rows_of(s, "II.2")[0].measured.rfind("not judged: only 6 points", 0) == 0);
    CHECK(rows_of(s, "II.2")[0].measured.find("needs ≥ 8") != std::string::npos);
  }
  {
    test::TempDir t;  // no run logs kfac_gn_norm
    write_run(t.path(), "a", config(false, "sgd", 1, "none"), {{{"epoch", 1}, {"jac_norm", 2.0}}});
    CHECK(verdict_of(signatures(t.path()), "II.2") == "not measured");
  }
}

namespace {

// --- III.1: growth D = damping_eff last/first; ratio = D_none/D_wd per seed. -----------------------
fs::path damping_scenario(const test::TempDir& t, const std::vector<double>& d_none, const std::vector<double>& d_wd,
                          bool with_metric = true) {
  const auto rows = [&](double D, int s) {
    const double d0 = 0.001 * double(s + 1);
    Json a = {{"epoch", 0}}, b = {{"epoch", 1}}, c = {{"epoch", 6}};
    if (with_metric) {
      a["damping_eff.fc0.weight"] = d0, b["damping_eff.fc0.weight"] = d0 * 1000, c["damping_eff.fc0.weight"] = d0 * D;
      a["damping_eff.fc1.weight"] = 1.0, c["damping_eff.fc1.weight"] = 1.0;  // not the first layer: not read
      c["damping_frac.fc0.weight"] = 0.25;
    }
    return std::vector<Json>{a, b, c};
  };
  for (std::size_t s = 0; s < d_none.size(); ++s) {
    write_run(t.path(), "none", config(true, "kfac-f", int(s) + 1, "none"), rows(d_none[s], int(s)));
    write_run(t.path(), "wd-all", config(true, "kfac-f", int(s) + 1, "wd"), rows(d_wd[s], int(s)));
    write_run(t.path(), "wd-fc", config(true, "kfac-f", int(s) + 1, "wd-fc"), rows(7.0, int(s)));
  }
  return t.path();
}

}  // namespace

TEST_CASE("report III.1 effective damping: shows iff geomean D_none/D_wd >= 2 and min > 1, non-BN-only D beside it") {
  {
    test::TempDir t;
    const auto s = signatures(damping_scenario(t, {10, 8, 12}, {1.5, 2, 1}));
    CHECK(verdict_of(s, "III.1") == "shows");
    const auto n = rows_of(s, "III.1")[0].numbers;
    CHECK(n["ratio"]["gmean"].get<double>() == doctest::Approx(geomean({10 / 1.5, 8 / 2.0, 12 / 1.0})));
    CHECK(n["D_wd_non_bn"]["gmean"].get<double>() == doctest::Approx(7.0));
    CHECK(n["damping_frac_none"]["gmean"].get<double>() == doctest::Approx(0.25));
    CHECK(rows_of(s, "III.1")[0].setting.find("layer fc0.weight") != std::string::npos);
  }
  {
    test::TempDir t;  // ratio 1.5 in every seed
    CHECK(verdict_of(signatures(damping_scenario(t, {3, 3, 3}, {2, 2, 2})), "III.1") == "does not show");
  }
  {
    test::TempDir t;  // geomean 3.68, but one seed's ratio is 0.5
    CHECK(verdict_of(signatures(damping_scenario(t, {10, 10, 1}, {1, 1, 2})), "III.1") == "does not show");
  }
  {
    test::TempDir t;
    CHECK(verdict_of(signatures(damping_scenario(t, {10, 10}, {1, 1}, false)), "III.1") == "not measured");
  }
}

namespace {

// --- III.2: none run: Fisher first/last against GN max/min. ----------------------------------------
fs::path trace_scenario(const test::TempDir& t, const std::vector<std::vector<double>>& fisher,
                        const std::vector<std::vector<double>>& gn) {
  for (std::size_t s = 0; s < fisher.size(); ++s) {
    std::vector<Json> rows;
    for (std::size_t e = 0; e < fisher[s].size(); ++e)
      rows.push_back({{"epoch", e}, {"fisher_trace.fc0.weight", fisher[s][e]}, {"gn_trace.fc0.weight", gn[s][e]}});
    write_run(t.path(), "none", config(true, "kfac-f", int(s) + 1, "none"), rows);
  }
  return t.path();
}

}  // namespace

TEST_CASE("report III.2 curvature traces: shows iff the Fisher fall exceeds 10x the GN span in every seed") {
  {
    test::TempDir t;  // falls 100 and 50, spans 2 and 4: 100 > 20, 50 > 40
    const auto s = signatures(trace_scenario(t, {{1000, 100, 10}, {500, 20, 10}}, {{1, 2, 1.5}, {4, 1, 2}}));
    CHECK(verdict_of(s, "III.2") == "shows");
    const auto n = rows_of(s, "III.2")[0].numbers;
    CHECK(n["fisher_fall"]["gmean"].get<double>() == doctest::Approx(std::sqrt(100.0 * 50.0)));
    CHECK(n["gn_span"]["max"].get<double>() == doctest::Approx(4.0));
  }
  {
    test::TempDir t;  // the second seed: fall 50, span 6 (50 < 60)
    CHECK(verdict_of(signatures(trace_scenario(t, {{1000, 100, 10}, {500, 20, 10}}, {{1, 2, 1.5}, {6, 1, 2}})),
                     "III.2") == "does not show");
  }
  {
    test::TempDir t;  // no fisher_trace: only a wd run
    write_run(t.path(), "wd", config(true, "kfac-f", 1, "wd"), {{{"epoch", 0}, {"gn_trace.fc0.weight", 1.0}}});
    CHECK(verdict_of(signatures(t.path()), "III.2") == "not measured");
  }
}

TEST_CASE("report: no runs for a rule give one not-measured row per rule, accuracy is mean ± sd over seeds") {
  test::TempDir t;
  for (int s = 1; s <= 3; ++s)
    write_run(t.path(), "plain", config(false, "adam", s, "none"), {{{"epoch", 1}, {"test_acc", 0.5}}},
              0.78 + 0.02 * s);  // 80, 82, 84 %
  const auto runs = app::load_runs({t.path() / "exp"});
  const auto s = app::measure_signatures(runs);
  for (const char* id : {"I.1", "I.2", "II.1", "II.2", "III.1", "III.2"}) CHECK(verdict_of(s, id) == "not measured");
  const auto acc = app::accuracy_table(runs);
  INFO(acc.markdown);
  CHECK(acc.markdown.find("| plain | none | 3 | 82.00 ± 2.00 |") != std::string::npos);
  CHECK(acc.markdown.find("noise") != std::string::npos);

  // The report: the scale note on top, each rule's paper figure, the informational accuracy table.
  app::ReportOptions o;
  o.inputs = {t.path() / "exp"};
  o.out = t.path() / "report";
  o.figures = false;
  REQUIRE(app::run_report(o) == 0);
  std::ifstream in(t.path() / "report" / "report.md");
  const std::string md((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  for (const char* want : {"CIFAR-10/100 for 200 epochs", "Fashion-MNIST", "| Fig. 3 |", "| Table 2 |", "| Fig. 5 |",
                           "| Eq. 14/16, Sec. 4.3 |", "| Fig. 7 |", "## Test accuracy over seeds (informational)"}) {
    INFO(want);
    CHECK(md.find(want) != std::string::npos);
  }
  CHECK(md.find("CIFAR-10/100") < md.find("## Mechanism signatures"));
}

TEST_CASE("report figures: one per mechanism with every seed, a metric no run logged leaves its panel out, said") {
  if (std::system("/usr/bin/python3 -c 'import matplotlib' >/dev/null 2>&1") != 0) std::exit(77);
  test::TempDir t;
  elr_scenario(t, {3, 2.5, 4});                  // I: elr.*, no rot.* (the rotation panels are left out)
  jacobian_scenario(t, {3, 3.5, 4}, {1.2, 1.4, 1.3});  // II
  damping_scenario(t, {10, 8, 12}, {1.5, 2, 1});  // III: damping_eff.*, no fisher_trace.*
  // An experiment whose name starts with the figure's kind: its name is not repeated in the file's.
  jacobian_scenario(t, {3, 3.5, 4}, {1.2, 1.4, 1.3}, "mech2-jacobian-deep");
  app::ReportOptions o;
  o.inputs = {t.path() / "exp", t.path() / "mech2-jacobian-deep"};
  o.out = t.path() / "report";
  o.plot_script = fs::path(WDLAB_SOURCE_DIR) / "scripts" / "plot_report.py";
  REQUIRE(app::run_report(o) == 0);
  std::ifstream in(t.path() / "report" / "report.md");
  const std::string md((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  INFO(md);
  CHECK_FALSE(fs::exists(t.path() / "report" / "figures" / "mech2-jacobian-mech2-jacobian-deep.png"));
  for (const char* f : {"mech1-exp-0", "mech2-jacobian-exp", "mech3-exp-0", "mech2-jacobian-deep"}) {
    for (const char* ext : {".png", ".svg"}) {
      const fs::path p = t.path() / "report" / "figures" / (std::string(f) + ext);
      CHECK_MESSAGE(fs::exists(p), p.string());
      if (fs::exists(p)) CHECK(fs::file_size(p) > 1000);
    }
    CHECK(md.find(std::string("(figures/") + f + ".png)") != std::string::npos);
  }
  CHECK(md.find("no wd run logged rot.*") != std::string::npos);
  CHECK(md.find("no run logged fisher_trace.*") != std::string::npos);
  CHECK(md.find(" failed: ") == std::string::npos);  // no figure function raised
}

TEST_CASE("report: two runs of one family, seed and class are named in a warning, distinct runs are not") {
  test::TempDir t;
  elr_scenario(t, {3, 3});  // mech1-none-s1/-s2, mech1-wd-s1/-s2: distinct, no warning
  CHECK(signatures(t.path()).markdown.find("**Warning**") == std::string::npos);
  CHECK(signatures(t.path()).json["collisions"].empty());
  // A second none run of seed 1 under another name (e.g. a longer run left in the same experiment).
  write_run(t.path(), "mech1-none-long", config(true, "sgd", 1, "none"),
            {Json{{"epoch", 0}, {"lr", 0.1}}, Json{{"epoch", 9}, {"lr", 0.01}}});
  const auto s = signatures(t.path());
  INFO(s.markdown);
  REQUIRE(s.json["collisions"].size() == 1);
  const std::string c = s.json["collisions"][0];
  CHECK(c.find("mech1-none-s1") != std::string::npos);
  CHECK(c.find("mech1-none-long-s1") != std::string::npos);
  CHECK(s.markdown.find("**Warning**: 1 run(s) share family, seed and regularization class") != std::string::npos);
}

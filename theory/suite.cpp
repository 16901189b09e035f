#include "theory/suite.hpp"

#include <algorithm>
#include <chrono>

#include <fmt/format.h>

#include "common/errors.hpp"
#include "common/fault.hpp"
#include "theory/checks.hpp"

namespace wdlab::theory {

void SuiteOptions::validate() const {
  if (depths.empty()) throw UsageError("--depths", "needs at least one depth");
  for (int d : depths)
    if (d < 1 || d > 8) throw UsageError("--depths", fmt::format("each depth must be in 1..8, got {}", d));
  if (widths.empty()) throw UsageError("--widths", "needs at least one width");
  for (int w : widths)
    if (w < 1 || w > 64) throw UsageError("--widths", fmt::format("each width must be in 1..64, got {}", w));
  if (seeds.empty()) throw UsageError("--seeds", "needs at least one seed");
  if (input_dim < 1 || input_dim > 64)
    throw UsageError("--input-dim", fmt::format("must be in 1..64, got {}", input_dim));
  if (classes < 2 || classes > 32)
    throw UsageError("--classes", fmt::format("must be in 2..32, got {}", classes));
  if (batch < 2 || batch > 512)
    throw UsageError("--batch", fmt::format("must be in 2..512, got {}", batch));
  if (!only.empty()) {
    const auto& ids = all_ids();
    const bool any = std::any_of(ids.begin(), ids.end(),
                                 [&](const std::string& id) { return id.starts_with(only); });
    if (!any) throw UsageError("--only", fmt::format("no check id starts with '{}'", only));
  }
}

const std::vector<std::string>& all_ids() {
  static const std::vector<std::string> ids{
      "lemma1.jx", "lemma1.jtheta", "lemma1.per_layer", "lemma2.gn", "lemma2.blockdiag",
      "lemma2.kfac", "theorem1.gn", "theorem1.kfac", "appE.gradient", "eq8.invariance",
      "eq8.gradient_scaling", "eq9.effective_lr", "eq15.curvature_scaling",
      "eq16.effective_damping", "fisher.ggn", "fisher.squared_loss", "fisher.monte_carlo",
      "eq7.wd_c_norm", "ext.exp_lr_equivalence", "ext.angular_equilibrium", "ext.grad_weight_ratio",
      // negative controls
      "lemma1.with_bias", "lemma2.kfac_relu", "theorem1.unwhitened", "eq9.wrong_power",
      "eq16.plain_damping", "ext.exp_lr_non_invariant", "ext.angular_other_form", "ext.grad_ratio_no_wd"};
  return ids;
}

SuiteSummary summarize(const std::vector<CheckRecord>& rows) {
  SuiteSummary s;
  for (const auto& r : rows) {
    ++s.rows;
    s.controls += r.expect == Outcome::fails;
    if (r.skipped()) ++s.skipped;
    else s.unexpected += !r.pass();
  }
  return s;
}

bool is_control(const std::string& id) {
  for (const char* c : {"lemma1.with_bias", "lemma2.kfac_relu", "theorem1.unwhitened", "eq9.wrong_power",
                        "eq16.plain_damping", "ext.exp_lr_non_invariant", "ext.angular_other_form",
                        "ext.grad_ratio_no_wd"})
    if (id == c) return true;
  return false;
}

std::vector<CheckRecord> run_suite(const SuiteOptions& opt,
                                   const std::function<void(const CheckRecord&)>& progress) {
  opt.validate();
  std::vector<CheckRecord> rows;
  // Runs a check only if its id passes the --only filter; the id is known before running.
  // A check whose precondition fails on this network becomes a skipped row with the reason;
  // it never aborts the suite.
  auto run = [&](const std::string& id, const Problem& net, auto&& fn) {
    if (!opt.only.empty() && !id.starts_with(opt.only)) return;
    const auto t0 = std::chrono::steady_clock::now();
    try {
      rows.push_back(fn());
    } catch (const PreconditionError& e) {
      rows.push_back(skipped_row(id, net.spec.describe(), is_control(id) ? Outcome::fails : Outcome::holds,
                                 e.what()));
    }
    rows.back().seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (fault::theory_fail(id, net.spec.depth, net.spec.width)) {  // test-only (common/fault.hpp)
      CheckRecord& r = rows.back();
      r.outcome = r.expect == Outcome::holds ? Outcome::fails : Outcome::holds;
      r.reason = "injected by WDLAB_FAULT_THEORY_FAIL";
    }
    if (progress) progress(rows.back());
  };
  for (std::uint64_t seed : opt.seeds) {
    if (opt.extensions == Extensions::on) {
      // Beyond the paper: on the synthetic BN problem of this seed (independent of the grid).
      const Problem two = ext_problem(seed, 2), one = ext_problem(seed, 1);
      for (double gamma : {0.0, 0.9})
        run("ext.exp_lr_equivalence", two, [&] {
          return ext_exp_lr_equivalence(two, gamma, ExpLrTrained::scale_invariant_only); });
      run("ext.exp_lr_non_invariant", two, [&] {
        return ext_exp_lr_equivalence(two, 0.9, ExpLrTrained::with_output_layer); });
      for (EqOptimizer o : {EqOptimizer::sgd_coupled, EqOptimizer::sgd_decoupled})
        run("ext.angular_equilibrium", two, [&] { return ext_angular_equilibrium(two, o); });
      run("ext.angular_other_form", two, [&] {
        return ext_angular_equilibrium(two, EqOptimizer::sgd_coupled, AngularCase::other_form_constant); });
      run("ext.grad_weight_ratio", one, [&] { return ext_grad_weight_ratio(one, GradRatioCase::weight_decay); });
      run("ext.grad_ratio_no_wd", one, [&] { return ext_grad_weight_ratio(one, GradRatioCase::no_weight_decay); });
    }
    for (int width : opt.widths) {
      bool mc_done = false;
      for (int depth : opt.depths) {
        MlpSpec s;
        s.input_dim = opt.input_dim;
        s.depth = depth;
        s.width = width;
        s.output_dim = opt.classes;
        const std::uint64_t net_seed = seed * 1000 + std::uint64_t(depth) * 10;
        for (Activation act : {Activation::linear, Activation::relu}) {
          s.activation = act;
          s.bias = Bias::off;
          s.norm = Norm::none;
          const Problem pb = make_problem(s, net_seed + int(act), opt.batch, InputKind::gaussian);
          run("lemma1.jx", pb, [&] { return lemma1_jx(pb); });
          run("lemma1.jtheta", pb, [&] { return lemma1_jtheta(pb); });
          run("lemma1.per_layer", pb, [&] { return lemma1_per_layer(pb); });
          run("lemma2.gn", pb, [&] { return lemma2_gn(pb); });
          run("lemma2.blockdiag", pb, [&] { return lemma2_blockdiag(pb); });
          const Problem smooth = make_problem(s, net_seed + int(act), opt.batch, InputKind::kink_free);
          run("appE.gradient", smooth, [&] { return appE_gradient(smooth); });
          run("fisher.ggn", pb, [&] { return fisher_ggn(pb); });
          run("fisher.squared_loss", pb, [&] { return fisher_squared_loss(pb); });
          run("eq7.wd_c_norm", smooth, [&] { return eq7_wd_c_norm(smooth); });
          if (act == Activation::linear) {
            run("lemma2.kfac", pb, [&] { return lemma2_kfac(pb); });
            const int nb = std::max(opt.batch, 2 * opt.input_dim);
            const Problem white = make_problem(s, net_seed, nb, InputKind::whitened);
            run("theorem1.gn", white, [&] { return theorem1_gn(white); });
            run("theorem1.kfac", white, [&] { return theorem1_kfac(white); });
            const Problem corr = make_problem(s, net_seed, nb, InputKind::correlated);
            run("theorem1.unwhitened", corr, [&] { return theorem1_unwhitened_control(corr); });
          } else {
            run("lemma2.kfac_relu", pb, [&] { return lemma2_kfac_relu_control(pb); });
            MlpSpec sb = s;
            sb.bias = Bias::on;
            const Problem biased = make_problem(sb, net_seed + 7, opt.batch, InputKind::gaussian);
            run("lemma1.with_bias", biased, [&] { return lemma1_with_bias_control(biased); });
            if (!mc_done && depth >= 2) {
              run("fisher.monte_carlo", pb, [&] { return fisher_monte_carlo(pb); });
              mc_done = true;
            }
          }
        }
        // BN networks: BN before every hidden ReLU, ε = 0 (exact scale invariance). The first
        // layer is scaled by 3 so that ‖θ_l‖ ≠ 1 and the controls can tell ρ from ρ².
        s.activation = Activation::relu;
        s.bias = Bias::off;
        s.norm = Norm::batchnorm;
        Problem bn = make_problem(s, net_seed + 5, opt.batch, InputKind::gaussian);
        // The BN layer under test: the first, unless it has one input (then BN sees sign(w)·x̂
        // and ignores the weights) and a hidden layer with >= 2 inputs exists.
        const int l = (opt.input_dim >= 2 || depth < 2 || width < 2) ? 0 : 1;
        bn.params = bn.params.scaled_layer(l, 3.0);  // ‖θ_l‖ ≠ 1
        run("eq8.invariance", bn, [&] { return eq8_invariance(bn, l, 0.3); });
        run("eq8.invariance", bn, [&] { return eq8_invariance(bn, l, 4.0); });
        run("eq8.gradient_scaling", bn, [&] { return eq8_gradient_scaling(bn, l, 2.5); });
        run("eq8.gradient_scaling", bn, [&] { return eq8_gradient_orthogonal(bn, l); });
        run("eq9.effective_lr", bn, [&] { return eq9_effective_lr(bn, l); });
        run("eq9.wrong_power", bn, [&] { return eq9_wrong_power_control(bn, l); });
        for (Curvature c : {Curvature::fisher, Curvature::gauss_newton,
                            Curvature::kfac_gauss_newton, Curvature::kfac_fisher})
          run("eq15.curvature_scaling", bn, [&] { return eq15_curvature_scaling(bn, l, c, 2.5); });
        DampingColumns columns;  // Eq. 16's Jacobian columns, computed once for its three rows
        for (Curvature c : {Curvature::fisher, Curvature::gauss_newton})
          run("eq16.effective_damping", bn, [&] { return eq16_effective_damping(bn, l, c, &columns); });
        run("eq16.plain_damping", bn, [&] {
          return eq16_plain_damping_control(bn, l, Curvature::fisher, &columns); });
        run("fisher.ggn", bn, [&] { return fisher_ggn(bn); });
      }
    }
  }
  return rows;
}

}  // namespace wdlab::theory

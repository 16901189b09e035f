#include "theory/suite.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "common/errors.hpp"
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
      "eq7.wd_c_norm",
      // negative controls
      "lemma1.with_bias", "lemma2.kfac_relu", "theorem1.unwhitened", "eq9.wrong_power",
      "eq16.plain_damping"};
  return ids;
}

std::vector<CheckRecord> run_suite(const SuiteOptions& opt,
                                   const std::function<void(const CheckRecord&)>& progress) {
  opt.validate();
  std::vector<CheckRecord> rows;
  // Runs a check only if its id passes the --only filter; the id is known before running.
  auto run = [&](const std::string& id, auto&& fn) {
    if (!opt.only.empty() && !id.starts_with(opt.only)) return;
    rows.push_back(fn());
    if (progress) progress(rows.back());
  };
  for (std::uint64_t seed : opt.seeds)
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
          run("lemma1.jx", [&] { return lemma1_jx(pb); });
          run("lemma1.jtheta", [&] { return lemma1_jtheta(pb); });
          run("lemma1.per_layer", [&] { return lemma1_per_layer(pb); });
          run("lemma2.gn", [&] { return lemma2_gn(pb); });
          run("lemma2.blockdiag", [&] { return lemma2_blockdiag(pb); });
          const Problem smooth = make_problem(s, net_seed + int(act), opt.batch, InputKind::kink_free);
          run("appE.gradient", [&] { return appE_gradient(smooth); });
          run("fisher.ggn", [&] { return fisher_ggn(pb); });
          run("fisher.squared_loss", [&] { return fisher_squared_loss(pb); });
          run("eq7.wd_c_norm", [&] { return eq7_wd_c_norm(smooth); });
          if (act == Activation::linear) {
            run("lemma2.kfac", [&] { return lemma2_kfac(pb); });
            const int nb = std::max(opt.batch, 2 * opt.input_dim);
            const Problem white = make_problem(s, net_seed, nb, InputKind::whitened);
            run("theorem1.gn", [&] { return theorem1_gn(white); });
            run("theorem1.kfac", [&] { return theorem1_kfac(white); });
            const Problem corr = make_problem(s, net_seed, nb, InputKind::correlated);
            run("theorem1.unwhitened", [&] { return theorem1_unwhitened_control(corr); });
          } else {
            run("lemma2.kfac_relu", [&] { return lemma2_kfac_relu_control(pb); });
            MlpSpec sb = s;
            sb.bias = Bias::on;
            const Problem biased = make_problem(sb, net_seed + 7, opt.batch, InputKind::gaussian);
            run("lemma1.with_bias", [&] { return lemma1_with_bias_control(biased); });
            if (!mc_done && depth >= 2) {
              run("fisher.monte_carlo", [&] { return fisher_monte_carlo(pb); });
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
        const int l = 0;
        bn.params = bn.params.scaled_layer(l, 3.0);
        run("eq8.invariance", [&] { return eq8_invariance(bn, l, 0.3); });
        run("eq8.invariance", [&] { return eq8_invariance(bn, l, 4.0); });
        run("eq8.gradient_scaling", [&] { return eq8_gradient_scaling(bn, l, 2.5); });
        run("eq8.gradient_scaling", [&] { return eq8_gradient_orthogonal(bn, l); });
        run("eq9.effective_lr", [&] { return eq9_effective_lr(bn, l); });
        run("eq9.wrong_power", [&] { return eq9_wrong_power_control(bn, l); });
        for (Curvature c : {Curvature::fisher, Curvature::gauss_newton,
                            Curvature::kfac_gauss_newton, Curvature::kfac_fisher})
          run("eq15.curvature_scaling", [&] { return eq15_curvature_scaling(bn, l, c, 2.5); });
        for (Curvature c : {Curvature::fisher, Curvature::gauss_newton})
          run("eq16.effective_damping", [&] { return eq16_effective_damping(bn, l, c); });
        run("eq16.plain_damping", [&] { return eq16_plain_damping_control(bn, l, Curvature::fisher); });
        run("fisher.ggn", [&] { return fisher_ggn(bn); });
      }
    }
  return rows;
}

}  // namespace wdlab::theory

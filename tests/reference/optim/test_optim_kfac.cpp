// K-FAC: the preconditioned step against an explicit Kronecker solve, damping split, inverse
// methods, cadence, KL clipping, raised damping, and the identity-factor limit (SGD).
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <cmath>
#include <limits>

#include "common/errors.hpp"
#include "optim_test_util.hpp"
#include "reference/optim/kfac.hpp"
#include "reference/optim/sgd.hpp"

using namespace optim_test;

namespace {

Kfac<double>& as_kfac(Optimizer<double>& o) { return dynamic_cast<Kfac<double>&>(o); }

double mean_trace(const Mat<double>& M) {
  double t = 0;
  for (Eigen::Index i = 0; i < M.rows(); ++i) t += M(i, i);
  return t / double(M.rows());
}

/// The preconditioned direction U of every block at parameters p, solved from the dense
/// Kronecker system
///   T·(Ã ⊗ S̃) vec(U) = vec(Ḡ),  Ã = A + π√λ' I,  S̃ = S + √λ'/π I,  λ' = λ/T,
/// vec stacking the columns of the out × (in+1) matrix Ḡ = [dW db] (+βθ under L2). Built with
/// loops; solved with Eigen's LU, which the code under test does not use.
ParamStore<double> kron_direction(const NetworkSpec& spec, const ParamStore<double>& p,
                                  const ParamStore<double>& g, const std::vector<FactorStats<double>>& st,
                                  double lambda, Regularization reg, double beta) {
  ParamStore<double> U = p.zeros_like();
  for (const auto& d : block_dims(spec)) {
    const FactorStats<double>* f = nullptr;
    for (const auto& s : st)
      if (s.layer == d.layer) f = &s;
    REQUIRE(f);
    const auto& sl = p.slots[d.layer];
    const double lam = lambda / d.locations;
    const double pi = std::sqrt(mean_trace(f->A) / mean_trace(f->S));
    const int a = d.a, o = d.out, n = a * o;
    // Entry (r, c) of Ḡ-shaped [W b] views of a store: column a−1 is the bias when there is one.
    auto entry = [&](auto& s, int r, int c) -> decltype(auto) {
      return sl.bias >= 0 && c == a - 1 ? s.values[sl.bias](r, 0) : s.values[sl.weight](r, c);
    };
    Mat<double> K(n, n);
    Vec<double> vecG(n);
    for (int c = 0; c < a; ++c)
      for (int r = 0; r < o; ++r) {
        const double th = entry(p, r, c);
        vecG(c * o + r) = entry(g, r, c) + (reg == Regularization::l2 ? beta * th : 0.0);
        for (int c2 = 0; c2 < a; ++c2)
          for (int r2 = 0; r2 < o; ++r2) {
            const double At = f->A(c, c2) + (c == c2 ? pi * std::sqrt(lam) : 0.0);
            const double St = f->S(r, r2) + (r == r2 ? std::sqrt(lam) / pi : 0.0);
            K(c * o + r, c2 * o + r2) = d.locations * At * St;
          }
      }
    const Vec<double> u = K.partialPivLu().solve(vecG);
    for (int c = 0; c < a; ++c)
      for (int r = 0; r < o; ++r) entry(U, r, c) = u(c * o + r);
  }
  return U;
}

OptimConfig kfac_cfg(double damping, Regularization reg = Regularization::none, double beta = 0) {
  OptimConfig c{.kind = OptimizerKind::kfac_f, .reg = {.kind = reg, .weight_decay = beta}};
  c.kfac.damping = damping;
  c.kfac.factor_init = FactorInit::data_pass;
  return c;
}

}  // namespace

TEST_CASE("K-FAC: two steps equal explicit (T·Ã⊗S̃)⁻¹ solves with momentum (dense and conv with 1/T, for none, L2, WD)") {
  for (int stride : {1, 2}) {
    const NetworkSpec spec = conv_spec(stride);
    const auto p0 = filled<double>(spec, 11);
    const ParamStore<double> g[2] = {filled<double>(spec, 12, 0.1), filled<double>(spec, 14, 0.1)};
    const auto st = random_stats<double>(spec, 13);
    for (auto reg : {Regularization::none, Regularization::l2, Regularization::wd}) {
      const double lambda = 3e-2, lr[2] = {0.2, 0.1}, beta = 0.05, mu = 0.9;
      auto opt = make_optimizer(kfac_cfg(lambda, reg, beta), spec, p0);  // T_inv 100: one inverse
      REQUIRE(opt->wants_factor_init());
      opt->init_factors(st);
      CHECK_FALSE(opt->wants_factor_init());
      auto p = p0;
      opt->step(p, g[0], lr[0], 0);
      opt->step(p, g[1], lr[1], 1);
      // By hand: v₁ = U(θ₀, g₀); θ₁ = θ₀ − η₀(v₁ [+βθ₀]); v₂ = μv₁ + U(θ₁, g₁); θ₂ = θ₁ − η₁(v₂ [+βθ₁]).
      auto th = p0, v = p0.zeros_like();
      for (int s = 0; s < 2; ++s) {
        const auto U = kron_direction(spec, th, g[s], st, lambda, reg, beta);
        for (std::size_t i = 0; i < th.values.size(); ++i) {
          v.values[i] = mu * v.values[i] + U.values[i];
          const Mat<double> decay = reg == Regularization::wd ? Mat<double>(beta * th.values[i])
                                                             : Mat<double>::Zero(th.values[i].rows(), th.values[i].cols());
          th.values[i] -= lr[s] * (v.values[i] + decay);
        }
      }
      const auto c = cmp(fmt::format("kfac vs kron solve, stride {} (T={}), {}", stride,
                                     (4 / stride) * (4 / stride), to_string(reg)),
                         flat(p), flat(th), tol::Kind::exact_double);
      MESSAGE(c.line());
      CHECK(c.pass);
    }
  }
}

TEST_CASE("K-FAC: L2 and WD differ exactly as Eqs. 6/7 say") {
  // WD: θ₁ = θ₁(none) − ηβθ₀ exactly; L2: θ₁ = θ₁(none) − η·C⁻¹(βθ₀), which is not −ηβθ₀.
  const NetworkSpec spec = conv_spec(1);
  const auto p0 = filled<double>(spec, 21);
  const auto g = filled<double>(spec, 22, 0.1);
  const auto st = random_stats<double>(spec, 23);
  auto one = [&](Regularization r) {
    auto opt = make_optimizer(kfac_cfg(1e-2, r, 0.1), spec, p0);
    opt->init_factors(st);
    auto p = p0;
    opt->step(p, g, 0.5, 0);
    return p;
  };
  const auto none = one(Regularization::none), wd = one(Regularization::wd), l2 = one(Regularization::l2);
  auto decayed = none;
  for (std::size_t i = 0; i < decayed.values.size(); ++i) decayed.values[i] -= 0.5 * 0.1 * p0.values[i];
  const auto cw = cmp("kfac wd = none - eta*beta*theta", flat(wd), flat(decayed), tol::Kind::exact_double);
  const auto cl = cmp("kfac l2 vs none - eta*beta*theta", flat(l2), flat(decayed), tol::Kind::exact_double);
  MESSAGE(cw.line() << "\n" << cl.line() << "  (must FAIL: L2 is preconditioned)");
  CHECK(cw.pass);
  CHECK(cl.rel_fro > 1e3 * tol::of(tol::Kind::exact_double));
}

TEST_CASE("K-FAC: identity factors with zero damping are SGD with heavy-ball momentum (dense) and 1/T (conv)") {
  const NetworkSpec spec = mlp_spec();
  const auto p0 = filled<double>(spec, 31);
  for (auto reg : {Regularization::none, Regularization::l2, Regularization::wd}) {
    OptimConfig kc{.kind = OptimizerKind::kfac_g, .reg = {.kind = reg, .weight_decay = 0.2}};
    kc.kfac.damping = 0;
    OptimConfig sc{.kind = OptimizerKind::sgd, .sgd = {.momentum = 0.9}, .reg = kc.reg};
    auto k = make_optimizer(kc, spec, p0);
    auto s = make_optimizer(sc, spec, p0);
    auto pk = p0, ps = p0;
    for (int it = 0; it < 3; ++it) {
      const auto g = filled<double>(spec, 40 + it, 0.3);
      k->step(pk, g, 0.1, it);
      s->step(ps, g, 0.1, it);
    }
    const auto c = cmp("kfac(A=I,S=I,lambda=0) vs sgd heavy ball, " + to_string(reg), flat(pk), flat(ps), bitwise);
    MESSAGE(c.line());
    CHECK(c.pass);
  }
  // Conv: the block is T·(I ⊗ I), so U = G/T; two steps by hand.
  const NetworkSpec cs = conv_spec(1);
  const auto q0 = filled<double>(cs, 32);
  OptimConfig kc{.kind = OptimizerKind::kfac_f};
  kc.kfac.damping = 0;
  auto k = make_optimizer(kc, cs, q0);
  auto q = q0;
  const ParamStore<double> g[2] = {filled<double>(cs, 50, 0.3), filled<double>(cs, 51, 0.3)};
  k->step(q, g[0], 0.1, 0);
  k->step(q, g[1], 0.1, 1);
  auto want = q0;
  for (std::size_t i = 0; i < want.values.size(); ++i) {
    const double T = cs.layers[want.info[i].layer].kind == LayerKind::conv2d ? 16.0 : 1.0;
    for (Eigen::Index j = 0; j < want.values[i].size(); ++j) {
      double v = 0, th = q0.values[i].data()[j];
      for (int s = 0; s < 2; ++s) {
        v = 0.9 * v + g[s].values[i].data()[j] / T;
        th -= 0.1 * v;
      }
      want.values[i].data()[j] = th;
    }
  }
  const auto c = cmp("kfac(A=I,S=I,lambda=0) conv: U = G/T", flat(q), flat(want), tol::Kind::exact_double);
  MESSAGE(c.line());
  CHECK(c.pass);
}

TEST_CASE("K-FAC: π-split damping values (dense λ, conv λ/T)") {
  Mat<double> A = Mat<double>::Zero(3, 3), S = Mat<double>::Zero(2, 2);
  A.diagonal() << 1, 2, 3;  // tr/dim = 2
  S.diagonal() << 0.25, 0.75;  // tr/dim = 0.5  →  π = 2
  struct Case { int T; double lam_eff, a, s; };
  for (const Case& c : {Case{1, 1e-2, 0.2, 0.05}, Case{4, 2.5e-3, 0.1, 0.025}}) {
    const optim::SplitDamping d = optim::pi_split_damping(A.trace(), 3, S.trace(), 2, 1e-2, c.T);
    const std::vector<double> got{d.lambda_eff, d.pi, d.a, d.s}, want{c.lam_eff, 2.0, c.a, c.s};
    const auto cm = cmp(fmt::format("pi split T={}", c.T), got, want, tol::Kind::exact_double);
    MESSAGE(cm.line());
    CHECK(cm.pass);
  }
  // A zero factor has no trace norm: π falls back to 1 instead of 0 or ∞.
  const optim::SplitDamping z = optim::pi_split_damping(A.trace(), 3, 0.0, 2, 1e-2, 1);
  CHECK(z.pi == 1.0);
  CHECK(std::isfinite(z.a));
  CHECK(optim::pi_split_damping(A.trace(), 3, S.trace(), 2, 1e-2, 1).pi != optim::pi_split_damping(A.trace(), 2, S.trace(), 3, 1e-2, 1).pi);  // control: dimensions matter
  CHECK_THROWS_AS(optim::pi_split_damping(1, 3, 1, 2, 1e-2, 0), InternalError);  // T >= 1
  // The optimizer uses this split: the stored inverses are (A + π√λ' I)⁻¹ and (S + √λ'/π I)⁻¹.
  const NetworkSpec spec = conv_spec(2);
  const auto p0 = filled<double>(spec, 61);
  const auto st = random_stats<double>(spec, 62);
  auto opt = make_optimizer(kfac_cfg(5e-3), spec, p0);
  opt->init_factors(st);
  auto p = p0;
  opt->step(p, filled<double>(spec, 63), 0.1, 0);
  auto& k = as_kfac(*opt);
  REQUIRE(k.num_blocks() == 2);
  for (int b = 0; b < k.num_blocks(); ++b) {
    const auto v = k.block(b);
    const double lam = 5e-3 / v.locations, pi = std::sqrt(mean_trace(st[b].A) / mean_trace(st[b].S));
    CHECK(v.locations == (b == 0 ? 4 : 1));
    const std::vector<double> got{v.damping.lambda_eff, v.damping.pi, v.damping.a, v.damping.s};
    const std::vector<double> want{lam, pi, pi * std::sqrt(lam), std::sqrt(lam) / pi};
    const auto cm = cmp(fmt::format("block {} damping", b), got, want, tol::Kind::exact_double);
    MESSAGE(cm.line());
    CHECK(cm.pass);
    Mat<double> At = st[b].A, Stl = st[b].S;
    At.diagonal().array() += pi * std::sqrt(lam);
    Stl.diagonal().array() += std::sqrt(lam) / pi;
    const Mat<double> ia = At * v.A_inv, is = Stl * v.S_inv;
    const auto ca = cmp(fmt::format("block {} (A+damp) A_inv = I", b), flat(ia),
                        flat(Mat<double>::Identity(ia.rows(), ia.cols()).eval()), tol::Kind::exact_double);
    const auto cs = cmp(fmt::format("block {} (S+damp) S_inv = I", b), flat(is),
                        flat(Mat<double>::Identity(is.rows(), is.cols()).eval()), tol::Kind::exact_double);
    MESSAGE(ca.line() << "\n" << cs.line());
    CHECK(ca.pass);
    CHECK(cs.pass);
  }
}

TEST_CASE("K-FAC: factors move only every T_cov steps (EMA), inverses only every T_inv steps") {
  const NetworkSpec spec = mlp_spec();
  auto p = filled<double>(spec, 71);
  OptimConfig cfg{.kind = OptimizerKind::kfac_f};
  cfg.kfac.t_cov = 3;
  cfg.kfac.t_inv = 5;
  cfg.kfac.cov_ema_decay = 0.8;
  auto opt = make_optimizer(cfg, spec, p);
  auto& k = as_kfac(*opt);
  // Expected factor of block 0 by hand: identity, then A ← 0.8A + 0.2Â after steps 2, 5, 8, 11.
  Mat<double> A_hand = Mat<double>::Identity(5, 5);
  Mat<double> A_at_last_inverse;
  Mat<double> prev_inv = k.block(0).A_inv;
  for (int it = 0; it < 12; ++it) {
    const Mat<double> A_before_step = k.block(0).A;
    opt->step(p, filled<double>(spec, 80 + it, 0.1), 0.05, it);
    const bool inv_expected = it % 5 == 0;
    const bool inv_changed = k.block(0).A_inv != prev_inv;
    CHECK_MESSAGE(inv_changed == inv_expected, "inverse update at step " << it);
    if (inv_expected) A_at_last_inverse = A_before_step;
    prev_inv = k.block(0).A_inv;
    // The stored inverse always belongs to the factor as it was at the last inverse update.
    Mat<double> At = A_at_last_inverse;
    const double d = k.block(0).damping.a;
    At.diagonal().array() += d;
    const Mat<double> prod = At * k.block(0).A_inv;
    CHECK(cmp("A_inv at step " + std::to_string(it), flat(prod),
              flat(Mat<double>::Identity(5, 5).eval()), tol::Kind::exact_double).pass);

    const bool want_factors = (it + 1) % 3 == 0;
    CHECK_MESSAGE(opt->wants_factors(it) == want_factors, "wants_factors at " << it);
    const auto st = random_stats<double>(spec, 90 + it);
    if (!want_factors) {
      CHECK_THROWS_AS(opt->update_factors(st, it), InternalError);
    } else {
      opt->update_factors(st, it);
      A_hand = 0.8 * A_hand + 0.2 * st[0].A;
    }
    const auto c = cmp("A after step " + std::to_string(it), flat(k.block(0).A), flat(A_hand),
                       tol::Kind::exact_double);
    if (it % 3 == 2) MESSAGE(c.line());
    CHECK(c.pass);
  }
}

TEST_CASE("K-FAC: KL clipping scales the step by ν = min(1, √(κ/(η²Σ⟨g,U⟩)))") {
  const NetworkSpec spec = mixed_spec();  // BN γ/β take U = g and count in the sum
  const auto p0 = filled<double>(spec, 101);
  const auto g = filled<double>(spec, 102, 0.2);
  const auto st = random_stats<double>(spec, 103);
  const double lr = 0.3;
  auto run = [&](double kappa, double* nu) {
    auto cfg = kfac_cfg(1e-2);
    cfg.kfac.kl_clip = kappa;
    auto opt = make_optimizer(cfg, spec, p0);
    opt->init_factors(st);
    auto p = p0;
    opt->step(p, g, lr, 0);
    if (nu) *nu = as_kfac(*opt).last_kl_scale();
    return p;
  };
  double nu_free = 0;
  const auto free = run(0, &nu_free);
  CHECK(nu_free == 1.0);
  // U from the unclipped step (v = U at step 0), and Σ⟨g, U⟩ over every trainable tensor.
  double inner = 0;
  std::vector<Mat<double>> U(p0.values.size());
  for (std::size_t i = 0; i < p0.values.size(); ++i) {
    U[i] = (p0.values[i] - free.values[i]) / lr;
    if (!p0.info[i].trainable()) continue;
    for (Eigen::Index j = 0; j < U[i].size(); ++j) inner += g.values[i].data()[j] * U[i].data()[j];
  }
  REQUIRE(inner > 0);
  for (double target : {0.5, 0.05}) {
    const double kappa = target * target * lr * lr * inner;
    double nu = 0;
    const auto clipped = run(kappa, &nu);
    auto want = p0;
    for (std::size_t i = 0; i < want.values.size(); ++i) want.values[i] -= lr * target * U[i];
    const auto c = cmp(fmt::format("kl clip nu={}", target), flat(clipped), flat(want), tol::Kind::exact_double);
    MESSAGE(c.line() << "  nu=" << nu);
    CHECK(c.pass);
    CHECK(std::abs(nu - target) <= tol::of(tol::Kind::exact_double) * target);
  }
  // κ above the step's KL: ν = 1 and the step is the unclipped one, bit for bit.
  double nu_big = 0;
  const auto big = run(4 * lr * lr * inner, &nu_big);
  CHECK(nu_big == 1.0);
  CHECK(cmp("kl clip inactive", flat(big), flat(free), bitwise).pass);
}

TEST_CASE("K-FAC: eigendecomposition and Cholesky inverses agree") {
  const NetworkSpec spec = mixed_spec();
  const auto p0 = filled<double>(spec, 111);
  const auto g = filled<double>(spec, 112, 0.2);
  const auto st = random_stats<double>(spec, 113);
  ParamStore<double> out[2];
  std::vector<Mat<double>> inv[2];
  for (int m = 0; m < 2; ++m) {
    auto cfg = kfac_cfg(1e-3);
    cfg.kfac.inverse = m == 0 ? InverseMethod::cholesky : InverseMethod::eig;
    auto opt = make_optimizer(cfg, spec, p0);
    opt->init_factors(st);
    out[m] = p0;
    opt->step(out[m], g, 0.1, 0);
    for (int b = 0; b < as_kfac(*opt).num_blocks(); ++b) {
      inv[m].push_back(as_kfac(*opt).block(b).A_inv);
      inv[m].push_back(as_kfac(*opt).block(b).S_inv);
    }
  }
  const auto c = cmp("kfac step eig vs cholesky", flat(out[1]), flat(out[0]), tol::Kind::exact_double);
  MESSAGE(c.line());
  CHECK(c.pass);
  for (std::size_t j = 0; j < inv[0].size(); ++j) {
    const auto ci = cmp(fmt::format("inverse {} eig vs cholesky", j), flat(inv[1][j]), flat(inv[0][j]),
                        tol::Kind::exact_double);
    MESSAGE(ci.line());
    CHECK(ci.pass);
  }
}

TEST_CASE("K-FAC: a singular factor with zero damping raises the damping instead of producing NaN") {
  const NetworkSpec spec = mlp_spec();
  const auto p0 = filled<double>(spec, 121);
  const auto g = filled<double>(spec, 122, 0.2);
  for (auto method : {InverseMethod::cholesky, InverseMethod::eig}) {
    CAPTURE(to_string(method));
    auto st = random_stats<double>(spec, 123);
    // Layer fc0's A becomes rank one (a aᵀ), layer fc1's S becomes exactly zero.
    Vec<double> a(5);
    for (int i = 0; i < 5; ++i) a(i) = unit(124, i);
    st[0].A = a * a.transpose();
    st[1].S.setZero();
    auto cfg = kfac_cfg(0.0);
    cfg.kfac.inverse = method;
    auto opt = make_optimizer(cfg, spec, p0);
    opt->init_factors(st);
    auto p = p0;
    opt->step(p, g, 0.1, 0);
    std::size_t nonfinite = 0;
    for (double x : flat(p)) nonfinite += std::isfinite(x) ? 0 : 1;
    CHECK(nonfinite == 0);
    const auto& raises = as_kfac(*opt).damping_raises();
    for (const auto& r : raises)
      MESSAGE(fmt::format("raised: iteration {} layer {} ({}) factor {} damping {:.3e} -> {:.3e} after {} raise(s)",
                          r.iteration, r.layer, r.layer_name, r.factor, r.requested, r.used, r.raises));
    REQUIRE(raises.size() == 2);
    CHECK(raises[0].layer_name == "fc0");
    CHECK(raises[0].factor == 'A');
    CHECK(raises[1].layer_name == "fc1");
    CHECK(raises[1].factor == 'S');
    for (const auto& r : raises) {
      CHECK(r.requested == 0.0);
      CHECK(r.used > 0.0);
      CHECK(r.raises >= 1);
    }
  }
  // The same factors with ordinary damping need no raise.
  auto st = random_stats<double>(spec, 123);
  auto opt = make_optimizer(kfac_cfg(1e-3), spec, p0);
  opt->init_factors(st);
  auto p = p0;
  opt->step(p, g, 0.1, 0);
  CHECK(as_kfac(*opt).damping_raises().empty());
  // A non-finite factor is a numeric error, not a silent NaN.
  st[0].A(0, 0) = NAN;
  auto bad = make_optimizer(kfac_cfg(1e-3), spec, p0);
  bad->init_factors(st);
  CHECK_THROWS_AS(bad->step(p, g, 0.1, 0), NumericError);
}

TEST_CASE("K-FAC: data-pass average, curvature kind and probe variance") {
  const NetworkSpec spec = mlp_spec();
  const auto s1 = random_stats<double>(spec, 131), s2 = random_stats<double>(spec, 132);
  FactorAverage<double> avg;
  avg.add(s1);
  avg.add(s2);
  CHECK(avg.batches() == 2);
  const auto m = avg.mean();
  for (std::size_t i = 0; i < m.size(); ++i) {
    const Mat<double> want = 0.5 * (s1[i].A + s2[i].A);
    CHECK(cmp("mean A", flat(m[i].A), flat(want), tol::Kind::exact_double).pass);
  }
  const auto p0 = filled<double>(spec, 133);
  OptimConfig f{.kind = OptimizerKind::kfac_f}, gn{.kind = OptimizerKind::kfac_g};
  gn.kfac.gn_probe_variance = 2.0;
  f.kfac.gn_probe_variance = 2.0;
  auto of = make_optimizer(f, spec, p0), og = make_optimizer(gn, spec, p0);
  CHECK(of->name() == "kfac_f");
  CHECK(og->name() == "kfac_g");
  CHECK(as_kfac(*of).curvature() == CurvatureKind::fisher);
  CHECK(as_kfac(*og).curvature() == CurvatureKind::gauss_newton);
  CHECK(as_kfac(*of).probe_variance() == 1.0);
  CHECK(as_kfac(*og).probe_variance() == 2.0);
  CHECK_FALSE(of->wants_factor_init());  // identity init owes nothing
  // Statistics that do not match the blocks are a bug of the caller.
  auto wrong = s1;
  wrong[0].A = Mat<double>::Identity(4, 4);  // fc0 has a bias: A must be 5×5
  CHECK_THROWS_AS(of->init_factors(wrong), InternalError);
  wrong = s1;
  wrong.pop_back();
  CHECK_THROWS_AS(of->init_factors(wrong), InternalError);
}

TEST_CASE("K-FAC: tensors without a block (BN γ/β) take the plain gradient, with L2 before and WD after") {
  const NetworkSpec spec = mixed_spec();
  const auto p0 = filled<double>(spec, 141);
  const auto g = filled<double>(spec, 142, 0.2);
  const auto st = random_stats<double>(spec, 143);
  const double lr = 0.3, beta = 0.2;
  for (auto reg : {Regularization::none, Regularization::l2, Regularization::wd}) {
    auto opt = make_optimizer(kfac_cfg(1e-2, reg, beta), spec, p0);
    opt->init_factors(st);
    auto p = p0;
    opt->step(p, g, lr, 0);
    for (const char* n : {"bn0.weight", "bn0.bias", "bn1.weight", "bn1.bias"}) {
      const Mat<double>& th = p0.at(n);
      Mat<double> want = th;
      for (Eigen::Index j = 0; j < th.size(); ++j) {
        const double x = th.data()[j], gx = g.at(n).data()[j];
        want.data()[j] = x - lr * (gx + (reg == Regularization::none ? 0.0 : beta * x));
      }
      const auto c = cmp(fmt::format("kfac {} {}", to_string(reg), n), flat(p.at(n)), flat(want),
                         tol::Kind::exact_double);
      MESSAGE(c.line());
      CHECK(c.pass);
    }
  }
}

TEST_CASE("K-FAC: init_factors mid-run makes the next step recompute the inverses") {
  const NetworkSpec spec = mlp_spec();
  auto p = filled<double>(spec, 161);
  OptimConfig cfg{.kind = OptimizerKind::kfac_f};
  cfg.kfac.t_inv = 100;
  auto opt = make_optimizer(cfg, spec, p);
  auto& k = as_kfac(*opt);
  opt->step(p, filled<double>(spec, 162, 0.1), 0.1, 0);
  const Mat<double> before = k.block(0).A_inv;
  opt->step(p, filled<double>(spec, 163, 0.1), 0.1, 1);
  CHECK(k.block(0).A_inv == before);  // 1 mod 100 ≠ 0: stale inverses are kept
  opt->init_factors(random_stats<double>(spec, 164));
  opt->step(p, filled<double>(spec, 165, 0.1), 0.1, 2);
  CHECK(k.block(0).A_inv != before);
  Mat<double> At = k.block(0).A;
  At.diagonal().array() += k.block(0).damping.a;
  CHECK(cmp("A_inv after init", flat((At * k.block(0).A_inv).eval()), flat(Mat<double>::Identity(5, 5).eval()),
            tol::Kind::exact_double).pass);
}

TEST_CASE("K-FAC through gradient factors: the factored layers' gradients are never read, KL clipping's ν is the formed gradient's") {
  // mixed_spec at B = 2: both dense layers go through their factors, the conv block and BN γ/β
  // through their gradients. The factored layers' gradient tensors are NaN in the second run:
  // any read of them (the KL sum included) would make the step NaN.
  const NetworkSpec spec = mixed_spec();
  const auto p0 = filled<double>(spec, 111);
  auto g = filled<double>(spec, 112, 0.2);
  const auto st = random_stats<double>(spec, 113);
  const Eigen::Index B = 2;
  std::vector<Mat<double>> Ds, Xs;
  std::vector<int> dense;
  for (int l = 0; l < int(spec.layers.size()); ++l) {
    const Layer& L = spec.layers[l];
    if (L.kind != LayerKind::dense) continue;
    dense.push_back(l);
    Mat<double> D(L.out.C, B), X(L.in.size(), B);
    for (Eigen::Index i = 0; i < D.size(); ++i) D.data()[i] = unit(114 + l, std::uint64_t(i));
    for (Eigen::Index i = 0; i < X.size(); ++i) X.data()[i] = unit(214 + l, std::uint64_t(i));
    const LayerSlots& s = p0.slots[std::size_t(l)];
    g.values[std::size_t(s.weight)] = D * X.transpose();  // the gradient the factors stand for
    g.values[std::size_t(s.bias)] = D.rowwise().sum();
    Ds.push_back(D);
    Xs.push_back(X);
  }
  auto hidden = g;
  for (const int l : dense)
    for (const int t : {p0.slots[std::size_t(l)].weight, p0.slots[std::size_t(l)].bias})
      hidden.values[std::size_t(t)].setConstant(std::numeric_limits<double>::quiet_NaN());
  const double lr = 0.3;
  struct Result {
    ParamStore<double> p;
    double nu;
    int low_rank;
  };
  auto run = [&](double kappa, bool factored) {
    auto cfg = kfac_cfg(1e-2);
    cfg.kfac.kl_clip = kappa;
    auto opt = make_optimizer(cfg, spec, p0);
    opt->init_factors(st);
    if (factored) {
      std::vector<GradientFactors<double>> gf;
      for (std::size_t j = 0; j < dense.size(); ++j) gf.push_back({dense[j], &Ds[j], &Xs[j]});
      for (const int l : dense) CHECK(opt->direction_from_factors(l, B));
      CHECK_FALSE(opt->direction_from_factors(0, B));  // the conv layer
      opt->set_gradient_factors(gf);
    }
    auto p = p0;
    opt->step(p, factored ? hidden : g, lr, 0);
    return Result{p, as_kfac(*opt).last_kl_scale(), as_kfac(*opt).last_low_rank_blocks()};
  };
  // κ from the unclipped dense step's Σ⟨g, U⟩, for ν = 0.3.
  const auto free = run(0, false);
  double inner = 0;
  for (std::size_t i = 0; i < p0.values.size(); ++i) {
    if (!p0.info[i].trainable()) continue;
    const Mat<double> U = (p0.values[i] - free.p.values[i]) / lr;
    for (Eigen::Index j = 0; j < U.size(); ++j) inner += g.values[i].data()[j] * U.data()[j];
  }
  REQUIRE(inner > 0);
  const double kappa = 0.09 * lr * lr * inner;
  for (const double k : {0.0, kappa}) {
    const auto dense_run = run(k, false), factored_run = run(k, true);
    CHECK(dense_run.low_rank == 0);
    CHECK(factored_run.low_rank == 2);
    const auto c = cmp(fmt::format("through factors vs dense, kl_clip {:.3g}", k), flat(factored_run.p),
                       flat(dense_run.p), tol::Kind::exact_double);
    MESSAGE(c.line() << "  nu dense " << dense_run.nu << ", through factors " << factored_run.nu);
    CHECK(c.pass);
    if (k > 0) CHECK(std::abs(dense_run.nu - 0.3) <= 1e-12);
    CHECK(std::abs(factored_run.nu - dense_run.nu) <= tol::of(tol::Kind::exact_double) * dense_run.nu);
  }
  // Larger batches cost less the dense way: the factors are declined there.
  auto opt = make_optimizer(kfac_cfg(1e-2), spec, p0);
  CHECK_FALSE(opt->direction_from_factors(dense[0], 10'000));
}

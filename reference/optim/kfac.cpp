#include "reference/optim/kfac.hpp"

#include <cmath>

#include <fmt/format.h>

#include "common/errors.hpp"
#include "reference/ops/gemm.hpp"

namespace wdlab::ref {

CurvatureKind curvature_kind(optim::OptimizerKind k) {
  switch (k) {
    case optim::OptimizerKind::kfac_f: return CurvatureKind::fisher;
    case optim::OptimizerKind::kfac_g: return CurvatureKind::gauss_newton;
    default: break;
  }
  throw InternalError("curvature_kind: " + to_string(k) + " is not a K-FAC optimizer");
}

template <class T>
Kfac<T>::Kfac(const optim::KfacConfig& cfg, const optim::RegConfig& reg, const NetworkSpec& spec,
              const ParamStore<T>& like, CurvatureKind curvature)
    : Optimizer<T>(spec, like, reg), cfg_(cfg), curvature_(curvature) {
  cfg_.validate();
  block_of_.assign(this->info_.size(), -1);
  for (int l = 0; l < int(spec.layers.size()); ++l) {
    const Layer& layer = spec.layers[l];
    if (!layer.has_weights()) continue;
    Block blk;
    blk.layer = l;
    blk.name = layer.name;
    blk.w = like.slots.at(l).weight;
    blk.b = like.slots.at(l).bias;
    if (blk.w < 0) throw InternalError("kfac: layer " + layer.name + " has no weight tensor");
    blk.out = this->shapes_[blk.w].first;
    blk.in = this->shapes_[blk.w].second;
    blk.locations = layer.kind == LayerKind::conv2d ? layer.out.H * layer.out.W : 1;
    blk.A = Mat<T>::Identity(blk.a_dim(), blk.a_dim());
    blk.S = Mat<T>::Identity(blk.out, blk.out);
    blk.A_inv = blk.A;
    blk.S_inv = blk.S;
    block_of_[blk.w] = int(blocks_.size());
    if (blk.b >= 0) block_of_[blk.b] = int(blocks_.size());
    blocks_.push_back(std::move(blk));
  }
  v_ = this->zero_buffers();
}

template <class T>
std::string Kfac<T>::name() const {
  return curvature_ == CurvatureKind::fisher ? "kfac_f" : "kfac_g";
}

template <class T>
double Kfac<T>::probe_variance() const {
  return curvature_ == CurvatureKind::gauss_newton ? cfg_.gn_probe_variance : 1.0;
}

template <class T>
bool Kfac<T>::wants_factors(std::int64_t k) const {
  return optim::kfac_wants_factors(cfg_, k);
}

template <class T>
bool Kfac<T>::wants_factor_init() const {
  return cfg_.factor_init == optim::FactorInit::data_pass && !initialized_;
}

template <class T>
std::vector<int> Kfac<T>::match(const std::vector<FactorStats<T>>& stats) const {
  std::vector<int> at(blocks_.size(), -1);
  for (int j = 0; j < int(stats.size()); ++j) {
    const FactorStats<T>& s = stats[j];
    int b = -1;
    for (int i = 0; i < int(blocks_.size()); ++i)
      if (blocks_[i].layer == s.layer) b = i;
    if (b < 0) throw InternalError(fmt::format("kfac: statistics for layer {}, which has no block", s.layer));
    if (at[b] >= 0) throw InternalError(fmt::format("kfac: two statistics for layer {}", s.layer));
    const Block& blk = blocks_[b];
    if (s.A.rows() != blk.a_dim() || s.A.cols() != blk.a_dim() || s.S.rows() != blk.out ||
        s.S.cols() != blk.out)
      throw InternalError(fmt::format("kfac: layer {} statistics A {}x{}, S {}x{}; expected {}² and {}²",
                                      blk.name, s.A.rows(), s.A.cols(), s.S.rows(), s.S.cols(),
                                      blk.a_dim(), blk.out));
    if (s.locations != blk.locations)
      throw InternalError(fmt::format("kfac: layer {} statistics over {} locations, expected {}",
                                      blk.name, s.locations, blk.locations));
    at[b] = j;
  }
  for (int i = 0; i < int(blocks_.size()); ++i)
    if (at[i] < 0) throw InternalError("kfac: no statistics for layer " + blocks_[i].name);
  return at;
}

template <class T>
void Kfac<T>::init_factors(const std::vector<FactorStats<T>>& mean_stats) {
  const auto at = match(mean_stats);
  for (int i = 0; i < int(blocks_.size()); ++i) {
    blocks_[i].A = mean_stats[at[i]].A;
    blocks_[i].S = mean_stats[at[i]].S;
  }
  initialized_ = true;
  inverses_ready_ = false;
}

template <class T>
void Kfac<T>::update_factors(const std::vector<FactorStats<T>>& stats, std::int64_t k) {
  if (!wants_factors(k))
    throw InternalError(fmt::format("kfac: update_factors at iteration {}, but T_cov = {} wants "
                                    "them only after steps k with (k+1) mod T_cov = 0", k, cfg_.t_cov));
  const auto at = match(stats);
  // All blocks are checked before any is changed, so a rejected estimate leaves the factors whole.
  for (int i = 0; i < int(blocks_.size()); ++i)
    for (const auto& [F, which] : {std::pair{&stats[at[i]].A, 'A'}, std::pair{&stats[at[i]].S, 'S'}})
      if (!F->allFinite())
        throw NonFiniteError("kfac_factor", blocks_[i].name,
                             fmt::format("the K-FAC {} estimate of {} at iteration {} has non-finite entries",
                                         which, blocks_[i].name, k));
  const T e = T(cfg_.cov_ema_decay), one_minus = T(1) - T(cfg_.cov_ema_decay);
  for (int i = 0; i < int(blocks_.size()); ++i) {
    blocks_[i].A = e * blocks_[i].A + one_minus * stats[at[i]].A;
    blocks_[i].S = e * blocks_[i].S + one_minus * stats[at[i]].S;
  }
}

template <class T>
void Kfac<T>::set_gradient_factors(const std::vector<GradientFactors<T>>& factors) {
  grad_factors_.assign(factors.begin(), factors.end());  // keeps the capacity step after step
}

template <class T>
bool Kfac<T>::low_rank(const Block& blk, Eigen::Index B) const {
  // L2 adds βθ, which makes the gradient full rank. Otherwise multiply-adds decide: through the
  // factors S̃⁻¹D (o²B), Ã⁻¹X̄ (a²B), their product (o·a·B) and, under KL clipping, DᵀS̃⁻¹D and
  // X̄ᵀÃ⁻¹X̄ (B²(o + a)); the dense way S̃⁻¹Ḡ and its product with Ã⁻¹ (o·a·(o + a)) plus the
  // gradient itself, which the backward pass then forms (o·a·B).
  const bool l2_here = this->l2(blk.w) || (blk.b >= 0 && this->l2(blk.b));
  if (blk.locations != 1 || l2_here) return false;
  const double b = double(B), o = double(blk.out), a = double(blk.a_dim());
  const double clip = cfg_.kl_clip > 0 ? b * b * (o + a) : 0;
  return b * (o * o + a * a) + clip < o * a * (o + a);
}

template <class T>
bool Kfac<T>::direction_from_factors(int layer, Eigen::Index batch) const {
  for (const Block& blk : blocks_)
    if (blk.layer == layer) return low_rank(blk, batch);
  return false;
}

template <class T>
void Kfac<T>::compute_inverses(std::int64_t k) {
  for (Block& blk : blocks_) {
    for (const auto& [F, which] : {std::pair{&blk.A, 'A'}, std::pair{&blk.S, 'S'}})
      if (!F->allFinite())
        throw NonFiniteError("kfac_factor", blk.name,
                             fmt::format("K-FAC factor {} of {} has non-finite entries", which, blk.name));
    blk.damping = optim::pi_split_damping(double(blk.A.trace()), int(blk.A.rows()), double(blk.S.trace()),
                                          int(blk.S.rows()), cfg_.damping, blk.locations);
    // A factor that stays indefinite after every damping raise is reported with its layer.
    const auto inverse = [&](const Mat<T>& F, double d, char which) {
      try {
        return damped_inverse(F, d, cfg_.inverse, cfg_.max_damping_raises);
      } catch (const NumericError& e) {
        throw NonFiniteError("kfac_inverse", blk.name, fmt::format("{} factor {}: {}", blk.name, which, e.what()));
      }
    };
    auto a = inverse(blk.A, blk.damping.a, 'A');
    auto s = inverse(blk.S, blk.damping.s, 'S');
    for (const auto* r : {&a, &s})
      if (r->raises > 0)
        raises_.push_back(DampingRaise{k, blk.layer, blk.name, r == &a ? 'A' : 'S', r->requested,
                                       r->used, r->raises});
    blk.A_inv = std::move(a.inverse);
    blk.S_inv = std::move(s.inverse);
  }
  inverses_ready_ = true;
}

template <class T>
void Kfac<T>::do_step(ParamStore<T>& params, const ParamStore<T>& grads, T lr, std::int64_t k) {
  if (optim::kfac_inverses_due(cfg_, k, inverses_ready_ ? optim::InversesReady::yes : optim::InversesReady::no))
    compute_inverses(k);
  const int n = int(params.values.size());
  const T beta = this->beta();
  // 1. Gradients with the L2 term (a copy only where L2 adds to them).
  std::vector<const T*> g(std::size_t(n), nullptr);
  work_.l2.resize(std::size_t(n));
  for (int i = 0; i < n; ++i) {
    if (!this->trainable(i)) continue;
    g[i] = grads.values[i].data();
    if (this->l2(i)) {
      work_.l2[i] = grads.values[i] + beta * params.values[i];
      g[i] = work_.l2[i].data();
    }
  }
  // 2. Preconditioned directions U, per tensor a pointer: into the block's U (o × a, column-major:
  // the weight's o·in entries first, then the bias column), or the gradient itself.
  std::vector<const T*> u(g);
  work_.U.resize(blocks_.size());
  work_.from_factors.assign(std::size_t(n), 0);
  const bool clip = cfg_.kl_clip > 0 && lr > 0;
  double inner = 0;  // Σ⟨g, U⟩ of the blocks preconditioned through factors (step 3)
  last_low_rank_ = 0;
  for (std::size_t bi = 0; bi < blocks_.size(); ++bi) {
    const Block& blk = blocks_[bi];
    Mat<T>& U = work_.U[bi];
    U.resize(blk.out, blk.a_dim());
    const GradientFactors<T>* f = nullptr;
    for (const auto& gf : grad_factors_)
      if (gf.layer == blk.layer) f = &gf;
    if (f && low_rank(blk, f->D->cols())) {
      // Ḡ = D X̄ᵀ has rank ≤ B: S̃⁻¹ Ḡ Ã⁻¹ = (S̃⁻¹ D)(Ã⁻¹ X̄)ᵀ (Ã⁻¹ symmetric).
      const Mat<T>& D = *f->D;
      Mat<T>& Xbar = work_.Xbar;
      Xbar.resize(blk.a_dim(), f->X->cols());
      Xbar.topRows(blk.in) = *f->X;
      if (blk.b >= 0) Xbar.row(blk.in).setOnes();
      gemm(work_.left, blk.S_inv, D);
      gemm(work_.right, blk.A_inv, Xbar);
      gemm(U, work_.left, work_.right.transpose());
      if (clip) {  // ⟨D X̄ᵀ, L Rᵀ⟩ = tr((DᵀL)(RᵀX̄)) = Σ (DᵀL) ⊙ (X̄ᵀR), both B × B and symmetric
        gemm(work_.DtL, D.transpose(), work_.left);
        gemm(work_.XtR, Xbar.transpose(), work_.right);
        inner += double((work_.DtL.array() * work_.XtR.array()).sum());
      }
      work_.from_factors[std::size_t(blk.w)] = 1;
      if (blk.b >= 0) work_.from_factors[std::size_t(blk.b)] = 1;
      ++last_low_rank_;
    } else {
      Mat<T>& G = work_.G;
      G.resize(blk.out, blk.a_dim());
      G.leftCols(blk.in) = Eigen::Map<const Mat<T>>(g[blk.w], blk.out, blk.in);
      if (blk.b >= 0) G.col(blk.in) = Eigen::Map<const Vec<T>>(g[blk.b], blk.out);
      gemm(work_.left, blk.S_inv, G);
      gemm(U, work_.left, blk.A_inv);
    }
    if (blk.locations > 1) U /= T(blk.locations);
    u[blk.w] = U.data();
    if (blk.b >= 0) u[blk.b] = U.data() + blk.out * blk.in;
  }
  grad_factors_.clear();
  // 3. KL clipping: ν = min(1, sqrt(c / (η² Σ g·u))).
  last_kl_scale_ = 1;
  if (clip) {
    for (int i = 0; i < n; ++i)
      if (this->trainable(i) && !work_.from_factors[std::size_t(i)])
        inner += double((Eigen::Map<const Vec<T>>(g[i], params.values[i].size()).array() *
                         Eigen::Map<const Vec<T>>(u[i], params.values[i].size()).array()).sum());
    const double denom = double(lr) * double(lr) * inner;
    if (denom > 0) last_kl_scale_ = std::min(1.0, std::sqrt(cfg_.kl_clip / denom));
  }
  // 4. Momentum, decoupled decay, update, elementwise in pieces on the engine's threads:
  //   v ← μ v + ν u;  θ ← θ − η (v (+ β θ, WD)).
  const T mu = T(cfg_.momentum), nu = T(last_kl_scale_);
  const bool clipped = last_kl_scale_ < 1;
  this->for_each_piece([&](int i, Eigen::Index b, Eigen::Index e) {
    const bool decay = this->wd(i);
    T* theta = params.values[i].data();
    T* v = v_[i].data();
    const T* ui = u[i];
    for (Eigen::Index j = b; j < e; ++j) {
      const T uj = clipped ? ui[j] * nu : ui[j];
      const T vj = mu * v[j] + uj;
      v[j] = vj;
      const T step = decay ? vj + beta * theta[j] : vj;
      theta[j] -= lr * step;
    }
  });
}

template <class T>
typename Kfac<T>::BlockView Kfac<T>::block(int b) const {
  const Block& blk = blocks_.at(b);
  return BlockView{blk.layer, blk.locations, blk.A, blk.S, blk.A_inv, blk.S_inv, blk.damping};
}

template <class T>
NamedTensors<T> Kfac<T>::state() const {
  NamedTensors<T> s;
  for (const Block& blk : blocks_) {
    s.emplace_back(optim::kfac_state_name("A", blk.name), blk.A);
    s.emplace_back(optim::kfac_state_name("S", blk.name), blk.S);
    s.emplace_back(optim::kfac_state_name("A_inv", blk.name), blk.A_inv);
    s.emplace_back(optim::kfac_state_name("S_inv", blk.name), blk.S_inv);
    Mat<T> d(1, 4);  // diagnostics only: the split of the last inverse update
    d << T(blk.damping.lambda_eff), T(blk.damping.pi), T(blk.damping.a), T(blk.damping.s);
    s.emplace_back(optim::kfac_state_name("damping", blk.name), d);
  }
  for (int i = 0; i < int(v_.size()); ++i)
    if (this->trainable(i)) s.emplace_back("optim.momentum." + this->info_[i].name, v_[i]);
  s.emplace_back(optim::kfac_initialized_name, scalar_state(T(initialized_ ? 1 : 0)));
  s.emplace_back(optim::kfac_inverses_ready_name, scalar_state(T(inverses_ready_ ? 1 : 0)));
  return s;
}

template <class T>
void Kfac<T>::load_state(const NamedTensors<T>& state) {
  StateReader<T> r(state, name());
  std::vector<Block> blocks = blocks_;
  for (Block& blk : blocks) {
    const Eigen::Index a = blk.a_dim(), o = blk.out;
    blk.A = r.take(optim::kfac_state_name("A", blk.name), a, a);
    blk.S = r.take(optim::kfac_state_name("S", blk.name), o, o);
    blk.A_inv = r.take(optim::kfac_state_name("A_inv", blk.name), a, a);
    blk.S_inv = r.take(optim::kfac_state_name("S_inv", blk.name), o, o);
    const Mat<T> d = r.take(optim::kfac_state_name("damping", blk.name), 1, 4);
    blk.damping = optim::SplitDamping{double(d(0, 0)), double(d(0, 1)), double(d(0, 2)), double(d(0, 3))};
  }
  std::vector<Mat<T>> v(v_.size());
  for (int i = 0; i < int(v_.size()); ++i)
    if (this->trainable(i))
      v[i] = r.take("optim.momentum." + this->info_[i].name, v_[i].rows(), v_[i].cols());
  auto flag = [&](const std::string& key) {
    const T x = r.scalar(key);
    if (!(x == T(0) || x == T(1))) throw DataError(key, fmt::format("must be 0 or 1, got {}", double(x)));
    return x == T(1);
  };
  const bool initialized = flag(optim::kfac_initialized_name);
  const bool ready = flag(optim::kfac_inverses_ready_name);
  r.finish();
  blocks_ = std::move(blocks);
  v_ = std::move(v);
  initialized_ = initialized;
  inverses_ready_ = ready;
}

template <class T>
void FactorAverage<T>::add(const std::vector<FactorStats<T>>& batch) {
  if (batches_ == 0) {
    sum_ = batch;
  } else {
    if (batch.size() != sum_.size())
      throw InternalError(fmt::format("FactorAverage: batch has {} layers, earlier ones {}",
                                      batch.size(), sum_.size()));
    for (std::size_t i = 0; i < batch.size(); ++i) {
      FactorStats<T>& s = sum_[i];
      const FactorStats<T>& b = batch[i];
      if (b.layer != s.layer || b.locations != s.locations || b.A.rows() != s.A.rows() ||
          b.S.rows() != s.S.rows())
        throw InternalError(fmt::format("FactorAverage: entry {} does not match earlier batches", i));
      s.A += b.A;
      s.S += b.S;
    }
  }
  ++batches_;
}

template <class T>
std::vector<FactorStats<T>> FactorAverage<T>::mean() const {
  if (batches_ == 0) throw InternalError("FactorAverage: no batches");
  std::vector<FactorStats<T>> m = sum_;
  for (auto& s : m) {
    s.A /= T(batches_);
    s.S /= T(batches_);
  }
  return m;
}

template class FactorAverage<double>;
template class FactorAverage<float>;
template class Kfac<double>;
template class Kfac<float>;

}  // namespace wdlab::ref

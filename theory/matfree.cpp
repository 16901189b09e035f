// Matrix-free products of the reference MLP for the theory checks; formulas in matfree.hpp.
#include "theory/matfree.hpp"

#include <cmath>
#include <limits>

#include <fmt/format.h>

#include "common/errors.hpp"
#include "common/philox.hpp"
#include "common/tolerances.hpp"
#include "reference/ops/loss.hpp"

namespace wdlab::theory {

namespace {

/// BN's forward-mode (and backward) projector, as in the reference (reference/mlp/mlp.cpp), per unit
/// over the batch: P(d) = (d − mean_n d − z ⊙ mean_n(z ⊙ d)) / σ.
template <class Block>
void bn_project_inplace(const Mat<double>& z, const Vec<double>& sigma, Block&& d) {
  const Vec<double> mean_d = d.rowwise().mean();
  const Vec<double> mean_zd = (z.array() * d.array()).rowwise().mean();
  d.colwise() -= mean_d;
  d -= (z.array().colwise() * mean_zd.array()).matrix();
  d = (d.array().colwise() / sigma.array()).matrix();
}

/// One layer of forward mode above the tangent ds_m of s_m (m < L+1 hidden): BN's projection,
/// then the ReLU's mask, giving the tangent of a_m. In place, on one direction's N columns.
template <class Block>
void hidden_tangent(const MlpSpec& s, const Forward& fw, int m, Block&& d) {
  if (s.has_bn(m)) bn_project_inplace(fw.z[m], fw.sigma[m], d);
  if (s.activation == Activation::relu) d = d.cwiseProduct((fw.z[m].array() > 0.0).cast<double>().matrix());
}

}  // namespace

Mat<double> jvp_theta(const MlpSpec& s, const Params& p, const Forward& fw, const Params& v) {
  // ds_l = V_l a_{l−1} + W_l da_{l−1} (+ dv_b), as ref::jvp with dX = 0, leaving out the products
  // with a zero factor: below the first layer where v is nonzero the tangent is 0 (no W_l da),
  // and V_l a_{l−1} where V_l = 0 (a direction confined to one layer costs one product per layer).
  Mat<double> da;  // tangent of a_{l−1}; empty while it is exactly 0
  for (int l = 0; l < s.num_layers(); ++l) {
    const bool v_here = !(v.W[l].array() == 0.0).all() || (s.bias == Bias::on && !(v.b[l].array() == 0.0).all());
    if (!v_here && da.size() == 0) {
      if (l == s.depth) return Mat<double>::Zero(s.output_dim, fw.a[0].cols());
      continue;
    }
    Mat<double> ds;
    if (v_here && da.size() > 0) ds = v.W[l] * fw.a[l] + p.W[l] * da;
    else if (v_here) ds = v.W[l] * fw.a[l];
    else ds = p.W[l] * da;
    if (s.bias == Bias::on && v_here) ds.colwise() += v.b[l];
    if (l == s.depth) return ds;
    hidden_tangent(s, fw, l, ds);
    da = std::move(ds);
  }
  throw InternalError("jvp_theta: unreachable");
}

Mat<double> propagate_tangents(const MlpSpec& s, const Params& p, const Forward& fw, int l, Mat<double> D) {
  const Eigen::Index N = fw.a[0].cols();
  WDLAB_CHECK(D.rows() == s.out_dim(l) && D.cols() % N == 0, "propagate_tangents: tangent shape");
  const Eigen::Index m_dirs = D.cols() / N;
  for (int m = l;; ++m) {
    if (m > l) D = p.W[m] * D;  // ds_m = W_m da_{m−1}, every direction in one product
    if (m == s.depth) return D;
    for (Eigen::Index j = 0; j < m_dirs; ++j) hidden_tangent(s, fw, m, D.middleCols(j * N, N));
  }
}

Mat<double> jvp_columns(const MlpSpec& s, const Params& p, const Forward& fw, int l, const std::vector<int>& idx) {
  const Eigen::Index N = fw.a[0].cols(), n = Eigen::Index(idx.size());
  const int off = s.param_offset(l), out = s.out_dim(l), in = s.in_dim(l);
  // Direction e_q: ds_l = E_rc a_{l−1} (row r = a_{l−1}'s row c; W_l column-major, q − off = r + c·out),
  // or e_r 1ᵀ for the bias entry r.
  Mat<double> D = Mat<double>::Zero(out, n * N);
  for (Eigen::Index j = 0; j < n; ++j) {
    const int k = idx[std::size_t(j)] - off;
    WDLAB_CHECK(k >= 0 && k < s.layer_param_count(l), "jvp_columns: index outside the layer");
    if (k < out * in) D.block(k % out, j * N, 1, N) = fw.a[l].row(k / out);
    else D.block(k - out * in, j * N, 1, N).setOnes();
  }
  return propagate_tangents(s, p, fw, l, std::move(D)).reshaped(Eigen::Index(s.output_dim) * N, n);
}

namespace {

}  // namespace

std::vector<Mat<double>> layer_cotangents(const MlpSpec& s, const Params& p, const Forward& fw, Mat<double> U,
                                          int down_to, KeepLayers keep) {
  const Eigen::Index N = fw.a[0].cols();
  WDLAB_CHECK(U.rows() == s.output_dim && U.cols() % N == 0, "layer_cotangents: cotangent shape");
  const Eigen::Index m = U.cols() / N;
  std::vector<Mat<double>> ds(std::size_t(s.num_layers()));
  ds.back() = std::move(U);
  for (int l = s.num_layers() - 1; l > down_to; --l) {
    // da_{l−1} = W_lᵀ ds_l (every cotangent in one product); ds_{l−1} = P_BN(φ'(z_{l−1}) ⊙ da),
    // BN's projector (self-adjoint: the same as in forward mode) per cotangent's block.
    const int h = l - 1;
    Mat<double> d = p.W[l].transpose() * ds[std::size_t(l)];
    const Mat<double> mask = (fw.z[h].array() > 0.0).cast<double>().matrix();
    for (Eigen::Index j = 0; j < m; ++j) {
      auto blk = d.middleCols(j * N, N);
      if (s.activation == Activation::relu) blk = blk.cwiseProduct(mask);
      if (s.has_bn(h)) bn_project_inplace(fw.z[h], fw.sigma[h], blk);
    }
    ds[std::size_t(h)] = std::move(d);
    if (keep == KeepLayers::lowest) ds[std::size_t(l)] = Mat<double>();  // free what is not wanted
  }
  return ds;
}

ReverseDots::ReverseDots(const MlpSpec& s, const Params& p, const Forward& fw, const std::vector<Params>& vs,
                         const std::vector<int>& examples)
    : s_(s), p_(p), fw_(fw), vs_(vs), ex_(examples) {
  if (ex_.empty())
    for (int n = 0; n < int(fw.a[0].cols()); ++n) ex_.push_back(n);
  // V_l a_{l−1} (+ v_b), out_l×N, per direction and layer, once for every cotangent:
  // (J_{θ_l,n}ᵀ u)·v_l = Σ_n' ds_{l,n'}ᵀ V_l a_{l−1,n'} (+ ds·v_b) for the cotangent u of example n.
  for (const Params& v : vs) {
    std::vector<Mat<double>> t;
    for (int l = 0; l < s.num_layers(); ++l) {
      t.push_back(v.W[l] * fw.a[l]);
      if (s.bias == Bias::on) t.back().colwise() += v.b[l];
    }
    va_.push_back(std::move(t));
  }
}

std::vector<Mat<double>> ReverseDots::operator()(const Mat<double>& U) const {
  const Eigen::Index m = Eigen::Index(ex_.size()), N = U.cols();
  std::vector<Mat<double>> out(vs_.size(), Mat<double>(s_.num_layers(), m));
  if (s_.norm != Norm::batchnorm) {
    // The examples are independent: one pass's layer cotangents give every example's dot,
    // column n' = n only.
    const auto ds = layer_cotangents(s_, p_, fw_, U);
    for (std::size_t j = 0; j < vs_.size(); ++j)
      for (int l = 0; l < s_.num_layers(); ++l) {
        const Eigen::RowVectorXd all = ds[std::size_t(l)].cwiseProduct(va_[j][std::size_t(l)]).colwise().sum();
        for (Eigen::Index i = 0; i < m; ++i) out[j](l, i) = all(ex_[std::size_t(i)]);
      }
    return out;
  }
  // BN couples the examples: example n's cotangent alone (column n of U, zeros elsewhere) gets
  // its own pass, all of them side by side in one layer_cotangents; the dot sums every column.
  Mat<double> Us = Mat<double>::Zero(U.rows(), m * N);
  for (Eigen::Index i = 0; i < m; ++i) Us.col(i * N + ex_[std::size_t(i)]) = U.col(ex_[std::size_t(i)]);
  const auto ds = layer_cotangents(s_, p_, fw_, std::move(Us));
  for (std::size_t j = 0; j < vs_.size(); ++j)
    for (int l = 0; l < s_.num_layers(); ++l)
      for (Eigen::Index i = 0; i < m; ++i)
        out[j](l, i) = ds[std::size_t(l)].middleCols(i * N, N).cwiseProduct(va_[j][std::size_t(l)]).sum();
  return out;
}

std::vector<Mat<double>> reverse_dots_multi(const MlpSpec& s, const Params& p, const Forward& fw,
                                            const Mat<double>& U, const std::vector<Params>& vs,
                                            const std::vector<int>& examples) {
  return ReverseDots(s, p, fw, vs, examples)(U);
}

Mat<double> reverse_dots(const MlpSpec& s, const Params& p, const Forward& fw, const Mat<double>& U,
                         const Params& v, const std::vector<int>& examples) {
  return reverse_dots_multi(s, p, fw, U, {v}, examples)[0];
}

Vec<double> gn_times(const MlpSpec& s, const Params& p, const Forward& fw, const Params& v) {
  const Mat<double> Jv = jvp_theta(s, p, fw, v);
  return ref::backward(s, p, fw, Mat<double>(Jv / double(Jv.cols()))).flatten();
}

Mat<double> softmax_hessian_times(const Mat<double>& probs, const Mat<double>& U) {
  const Eigen::RowVectorXd pu = probs.cwiseProduct(U).colwise().sum();
  Mat<double> out = probs.cwiseProduct(U);
  out -= probs * pu.asDiagonal();
  return out;
}

Vec<double> ggn_times(const MlpSpec& s, const Params& p, const Forward& fw, const Params& v) {
  const Mat<double> Jv = jvp_theta(s, p, fw, v);
  const Mat<double> probs = ref::softmax_fprop<double>(fw.output());
  const Mat<double> HJv = softmax_hessian_times(probs, Jv) / double(Jv.cols());
  return ref::backward(s, p, fw, HJv).flatten();
}

Params random_direction(const MlpSpec& s, std::uint64_t seed, int index, int layer) {
  Params v = ref::zeros_like<double>(s);
  for (int l = 0; l < s.num_layers(); ++l) {
    if (layer >= 0 && l != layer) continue;
    const std::uint64_t step = 100 + std::uint64_t(index) * 64 + std::uint64_t(l);
    for (Eigen::Index i = 0; i < v.W[l].size(); ++i)
      v.W[l].data()[i] = rng::normal(seed, rng::Purpose::theory, step, std::uint64_t(i));
    if (s.bias == Bias::on)
      for (Eigen::Index i = 0; i < v.b[l].size(); ++i)
        v.b[l](i) = rng::normal(seed, rng::Purpose::theory, step + 32, std::uint64_t(i));
  }
  return v;
}

Params layer_only(const MlpSpec& s, int layer, const Vec<double>& t) {
  Vec<double> theta = Vec<double>::Zero(s.num_params());
  theta.segment(s.param_offset(layer), s.layer_param_count(layer)) = t;
  return Params::unflatten(s, theta);
}

namespace {

/// Hidden pre-activations z_l of every layer, stacked.
std::vector<Mat<double>> hidden_z(const Problem& pb, const Vec<double>& theta) {
  const auto fw = ref::forward(pb.spec, Params::unflatten(pb.spec, theta), pb.X);
  return {fw.z.begin(), fw.z.begin() + pb.spec.depth};
}

}  // namespace

std::vector<ref::KfacFactors<double>> kfac_factors_batched(const MlpSpec& s, const Params& p,
                                                           const Mat<double>& X, ref::KfacCurvature c) {
  if (s.norm == Norm::batchnorm)
    throw InternalError("kfac_factors_batched: BN couples the examples; use ref::kfac_factors");
  const auto fw = ref::forward(s, p, X);
  const int K = s.output_dim, N = int(X.cols());
  std::vector<ref::KfacFactors<double>> out(s.num_layers());
  for (int l = 0; l < s.num_layers(); ++l) {
    Mat<double> abar = fw.a[l];
    if (s.bias == Bias::on) {
      abar.conservativeResize(abar.rows() + 1, Eigen::NoChange);
      abar.row(abar.rows() - 1).setOnes();
    }
    out[l].A = abar * abar.transpose() / double(N);
    out[l].S = Mat<double>::Zero(s.out_dim(l), s.out_dim(l));
  }
  const Mat<double> probs = ref::softmax_fprop<double>(fw.output());
  // The K cotangents side by side (block k: e_k in every column, or √p_k (p − e_k)), one
  // layer_cotangents for all: S_l = (1/N) Σ_k D_k D_kᵀ = (1/N) D Dᵀ.
  Mat<double> U(K, Eigen::Index(K) * N);
  for (int k = 0; k < K; ++k) {
    auto Uk = U.middleCols(Eigen::Index(k) * N, N);
    if (c == ref::KfacCurvature::gn_exact) {
      Uk.setZero();
      Uk.row(k).setOnes();  // e_k for every example
    } else if (c == ref::KfacCurvature::fisher_exact) {
      Uk = probs;  // class k: √p_k (p − e_k), so that Σ_k of D Dᵀ carries the weight p_k
      Uk.row(k).array() -= 1.0;
      Uk = Uk * probs.row(k).cwiseSqrt().asDiagonal();
    } else {
      throw InternalError("kfac_factors_batched: exact curvatures only");
    }
  }
  const auto ds = layer_cotangents(s, p, fw, std::move(U));
  for (int l = 0; l < s.num_layers(); ++l) out[l].S.noalias() = ds[std::size_t(l)] * ds[std::size_t(l)].transpose() / double(N);
  return out;
}

Mat<double> kfac_S_partial(const MlpSpec& s, const Params& p, const Mat<double>& X, int layer,
                           ref::KfacCurvature c, int examples) {
  const auto fw = ref::forward(s, p, X);
  const int K = s.output_dim, N = int(X.cols());
  const Mat<double> probs = ref::softmax_fprop<double>(fw.output());
  // One cotangent per (n, k), alone in column n, all side by side: S = Σ w_{nk} D_{nk} D_{nk}ᵀ with
  // D_{nk} the layer's cotangent block, w = 1 (GN: e_k) or p_k(x_n) (Fisher: p_n − e_k).
  const int m = std::min(examples, N);
  Mat<double> U = Mat<double>::Zero(K, Eigen::Index(m) * K * N);
  std::vector<double> w;
  for (int n = 0; n < m; ++n)
    for (int k = 0; k < K; ++k) {
      const Eigen::Index col = (Eigen::Index(n) * K + k) * N + n;
      if (c == ref::KfacCurvature::gn_exact) {
        U(k, col) = 1;
        w.push_back(1);
      } else {
        U.col(col) = probs.col(n);
        U(k, col) -= 1;
        w.push_back(probs(k, n));
      }
    }
  const auto ds = layer_cotangents(s, p, fw, std::move(U), layer, KeepLayers::lowest);
  const Mat<double>& D = ds[std::size_t(layer)];
  Mat<double> S = Mat<double>::Zero(s.out_dim(layer), s.out_dim(layer));
  for (std::size_t b = 0; b < w.size(); ++b) {
    const auto Db = D.middleCols(Eigen::Index(b) * N, N);
    S.noalias() += w[b] * Db * Db.transpose();
  }
  return S;
}

bool set_fd_tolerance(CheckRecord& r, const DirectionalFd& fd, const Vec<double>& rhs) {
  const double scale = std::max(rhs.norm(), fd.deriv.norm());
  const double table = tol::of(tol::Kind::finite_difference);
  r.derived_tol = scale > 0 ? std::max(table, 10 * fd.err.norm() / scale) : table;
  r.tol_basis = fmt::format("max(table {:.0e}, 10 x FD error estimate {:.2g} / scale {:.2g}), h={:.2g}",
                            table, fd.err.norm(), scale, fd.h);
  if (r.derived_tol <= 1e-3) return true;
  r.reason = fmt::format("the finite differences' error estimate gives a tolerance of {:.2g} (> 1e-3)",
                         r.derived_tol);
  return false;
}

double kink_free_step(const Problem& pb, const Vec<double>& dir, double h_max, double h_min,
                      std::string& why) {
  if (pb.spec.activation == Activation::linear || pb.spec.depth == 0) return h_max;
  const Vec<double> theta = pb.params.flatten();
  const auto z0 = hidden_z(pb, theta);
  // First-order rate of the pre-activations along dir, from a tiny step.
  const double delta = 1e-7;
  const auto zd = hidden_z(pb, theta + delta * dir);
  // An entry exactly 0 that stays exactly 0 (a unit fed only by dead units, no biases) is pinned
  // to its kink along this direction: the ReLU sees 0 on both sides, no kink is crossed.
  double margin = std::numeric_limits<double>::infinity(), rate = 0;
  for (std::size_t l = 0; l < z0.size(); ++l)
    for (Eigen::Index i = 0; i < z0[l].size(); ++i) {
      const double a = z0[l].data()[i], b = zd[l].data()[i];
      if (a == 0 && b == 0) continue;
      margin = std::min(margin, std::abs(a));
      rate = std::max(rate, std::abs(b - a) / delta);
    }
  if (!(margin > 0)) {
    why = "a ReLU pre-activation sits exactly on its kink (z = 0) and moves along the direction: "
          "no finite-difference step exists";
    return 0;
  }
  double h = rate > 0 ? std::min(h_max, 0.25 * margin / rate) : h_max;
  auto same_pattern = [&](double t) {
    const auto zt = hidden_z(pb, theta + t * dir);
    for (std::size_t l = 0; l < z0.size(); ++l)
      if (((zt[l].array() > 0) != (z0[l].array() > 0)).any() ||
          ((zt[l].array() == 0) != (z0[l].array() == 0)).any())
        return false;
    return true;
  };
  for (; h >= h_min; h /= 4) {
    bool ok = true;
    for (double s : {1.0, -1.0, 0.5, -0.5, 0.25, -0.25, 0.75, -0.75})
      if (!same_pattern(s * h)) {
        ok = false;
        break;
      }
    if (ok) return h;
  }
  why = fmt::format(
      "no finite-difference step >= {:.0e} keeps every ReLU on its side: the nearest "
      "pre-activation is {:.3g} from its kink and moves at rate {:.3g}",
      h_min, margin, rate);
  return 0;
}

}  // namespace wdlab::theory

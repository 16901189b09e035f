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

Mat<double> jvp_theta(const MlpSpec& s, const Params& p, const Forward& fw, const Params& v) {
  return ref::jvp<double>(s, p, fw, v, Mat<double>::Zero(fw.a[0].rows(), fw.a[0].cols()));
}

namespace {

/// Per layer, per example: ds_{l,n}ᵀ V_l a_{l−1,n} (+ ds_{l,n}ᵀ dv_b) from one backward pass's
/// layer cotangents; valid per example only when the examples are independent (no BN).
Mat<double> layer_dots(const MlpSpec& s, const Forward& fw, const ref::MlpGrads<double>& g,
                       const Params& v) {
  const Eigen::Index N = fw.a[0].cols();
  Mat<double> out(s.num_layers(), N);
  for (int l = 0; l < s.num_layers(); ++l) {
    Mat<double> t = v.W[l] * fw.a[l];  // V_l a_{l−1}, out_l×N
    if (s.bias == Bias::on) t.colwise() += v.b[l];
    out.row(l) = g.ds[l].cwiseProduct(t).colwise().sum();
  }
  return out;
}

}  // namespace

std::vector<Mat<double>> reverse_dots_multi(const MlpSpec& s, const Params& p, const Forward& fw,
                                            const Mat<double>& U, const std::vector<Params>& vs,
                                            const std::vector<int>& examples) {
  const int N = int(U.cols());
  std::vector<int> ex = examples;
  if (ex.empty())
    for (int n = 0; n < N; ++n) ex.push_back(n);
  std::vector<Mat<double>> out(vs.size(), Mat<double>(s.num_layers(), Eigen::Index(ex.size())));
  if (s.norm != Norm::batchnorm) {
    const auto g = ref::backward(s, p, fw, U);
    for (std::size_t j = 0; j < vs.size(); ++j) {
      const Mat<double> all = layer_dots(s, fw, g, vs[j]);
      for (std::size_t i = 0; i < ex.size(); ++i) out[j].col(Eigen::Index(i)) = all.col(ex[i]);
    }
    return out;
  }
  // BN couples the examples: one backward pass per example, its cotangent alone, and the
  // per-layer dot of the whole gradient with each v.
  for (std::size_t i = 0; i < ex.size(); ++i) {
    Mat<double> Un = Mat<double>::Zero(U.rows(), U.cols());
    Un.col(ex[i]) = U.col(ex[i]);
    const auto g = ref::backward(s, p, fw, Un);
    for (std::size_t j = 0; j < vs.size(); ++j)
      for (int l = 0; l < s.num_layers(); ++l) {
        double d = g.dW[l].cwiseProduct(vs[j].W[l]).sum();
        if (s.bias == Bias::on) d += g.db[l].dot(vs[j].b[l]);
        out[j](l, Eigen::Index(i)) = d;
      }
  }
  return out;
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
  for (int k = 0; k < K; ++k) {
    Mat<double> U;
    if (c == ref::KfacCurvature::gn_exact) {
      U = Mat<double>::Zero(K, N);
      U.row(k).setOnes();  // e_k for every example
    } else if (c == ref::KfacCurvature::fisher_exact) {
      U = probs;  // class k: √p_k (p − e_k), so that Σ_k of D Dᵀ carries the weight p_k
      U.row(k).array() -= 1.0;
      U = U * probs.row(k).cwiseSqrt().asDiagonal();
    } else {
      throw InternalError("kfac_factors_batched: exact curvatures only");
    }
    const auto g = ref::backward(s, p, fw, U);
    for (int l = 0; l < s.num_layers(); ++l) out[l].S.noalias() += g.ds[l] * g.ds[l].transpose();
  }
  for (auto& f : out) f.S /= double(N);
  return out;
}

Mat<double> kfac_S_partial(const MlpSpec& s, const Params& p, const Mat<double>& X, int layer,
                           ref::KfacCurvature c, int examples) {
  const auto fw = ref::forward(s, p, X);
  const int K = s.output_dim, N = int(X.cols());
  const Mat<double> probs = ref::softmax_fprop<double>(fw.output());
  Mat<double> S = Mat<double>::Zero(s.out_dim(layer), s.out_dim(layer));
  for (int n = 0; n < std::min(examples, N); ++n)
    for (int k = 0; k < K; ++k) {
      Mat<double> U = Mat<double>::Zero(K, N);
      double w = 1;
      if (c == ref::KfacCurvature::gn_exact) {
        U(k, n) = 1;
      } else {
        U.col(n) = probs.col(n);
        U(k, n) -= 1;
        w = probs(k, n);
      }
      const auto g = ref::backward(s, p, fw, U);
      S.noalias() += w * g.ds[layer] * g.ds[layer].transpose();
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

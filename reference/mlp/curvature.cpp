#include "reference/mlp/curvature.hpp"

#include <cmath>

#include "common/errors.hpp"
#include "common/philox.hpp"
#include "reference/ops/loss.hpp"

namespace wdlab::ref {

template <class T>
Mat<T> gauss_newton(const std::vector<Mat<T>>& J) {
  WDLAB_CHECK(!J.empty(), "no examples");
  Mat<T> G = Mat<T>::Zero(J[0].cols(), J[0].cols());
  for (const auto& Jn : J) G.noalias() += Jn.transpose() * Jn;
  return G / T(J.size());
}

template <class T>
Mat<T> generalized_gauss_newton_ce(const std::vector<Mat<T>>& J, const Mat<T>& probs) {
  WDLAB_CHECK(!J.empty() && probs.cols() == Eigen::Index(J.size()), "probs/J mismatch");
  Mat<T> C = Mat<T>::Zero(J[0].cols(), J[0].cols());
  for (std::size_t n = 0; n < J.size(); ++n) {
    const Vec<T> pn = probs.col(n);
    const Mat<T> H = Mat<T>(pn.asDiagonal()) - pn * pn.transpose();  // ∇²_z CE at z = f_n
    C.noalias() += J[n].transpose() * H * J[n];
  }
  return C / T(J.size());
}

template <class T>
Mat<T> fisher_exact_ce(const MlpSpec& spec, const MlpParams<T>& p, const Mat<T>& X) {
  const auto fw = forward(spec, p, X);
  const Mat<T> probs = softmax_fprop<T>(fw.output());
  const Eigen::Index N = X.cols(), K = spec.output_dim, P = spec.num_params();
  Mat<T> F = Mat<T>::Zero(P, P);
  for (Eigen::Index n = 0; n < N; ++n)
    for (Eigen::Index y = 0; y < K; ++y) {
      // ∇_θ[−log p(y|x_n)] = J_nᵀ (p_n − e_y): backprop of that cotangent on column n only
      Mat<T> dF = Mat<T>::Zero(K, N);
      dF.col(n) = probs.col(n);
      dF(y, n) -= T(1);
      const Vec<T> g = backward(spec, p, fw, dF).flatten();
      F.noalias() += probs(y, n) * g * g.transpose();
    }
  return F / T(N);
}

template <class T>
Mat<T> fisher_exact_gaussian(const MlpSpec& spec, const MlpParams<T>& p, const Mat<T>& X) {
  const auto fw = forward(spec, p, X);
  const Eigen::Index N = X.cols(), K = spec.output_dim, P = spec.num_params();
  const T r = std::sqrt(T(K));
  Mat<T> F = Mat<T>::Zero(P, P);
  for (Eigen::Index n = 0; n < N; ++n)
    for (Eigen::Index k = 0; k < K; ++k)
      for (T sign : {T(1), T(-1)}) {
        // y = f + ε: ∇_θ[−log N(y; f, I)] = −J_nᵀ ε, ε = ±√K e_k
        Mat<T> dF = Mat<T>::Zero(K, N);
        dF(k, n) = -sign * r;
        const Vec<T> g = backward(spec, p, fw, dF).flatten();
        F.noalias() += g * g.transpose();
      }
  return F / T(2 * K * N);
}

namespace {
/// ŷ ~ Cat(p) by inversion of one uniform from the shared RNG.
template <class T>
Eigen::Index sample_class(const Vec<T>& p, double u) {
  double c = 0;
  for (Eigen::Index y = 0; y < p.size(); ++y) {
    c += double(p(y));
    if (u < c) return y;
  }
  return p.size() - 1;  // u ≥ Σp only by rounding
}
}  // namespace

template <class T>
Mat<T> fisher_sampled_ce(const MlpSpec& spec, const MlpParams<T>& p, const Mat<T>& X,
                         int n_samples, std::uint64_t seed, std::uint64_t step) {
  WDLAB_CHECK(n_samples > 0, "need at least one sample");
  const auto fw = forward(spec, p, X);
  const Mat<T> probs = softmax_fprop<T>(fw.output());
  const Eigen::Index N = X.cols(), K = spec.output_dim, P = spec.num_params();
  // Tally the draws per (example, class) first: F̂ = (1/n) Σ_{n,y} c_{ny} g_{ny} g_{ny}ᵀ needs
  // one backward pass per distinct pair instead of one per sample.
  Mat<T> count = Mat<T>::Zero(K, N);
  for (int i = 0; i < n_samples; ++i) {
    const Eigen::Index n = i % N;
    count(sample_class<T>(probs.col(n), rng::uniform(seed, rng::Purpose::fisher_target, step, i)),
          n) += T(1);
  }
  Mat<T> F = Mat<T>::Zero(P, P);
  for (Eigen::Index n = 0; n < N; ++n)
    for (Eigen::Index y = 0; y < K; ++y) {
      if (count(y, n) == T(0)) continue;
      Mat<T> dF = Mat<T>::Zero(K, N);
      dF.col(n) = probs.col(n);
      dF(y, n) -= T(1);
      const Vec<T> g = backward(spec, p, fw, dF).flatten();
      F.noalias() += count(y, n) * g * g.transpose();
    }
  return F / T(n_samples);
}

template <class T>
std::vector<KfacFactors<T>> kfac_factors(const MlpSpec& spec, const MlpParams<T>& p,
                                         const Mat<T>& X, KfacCurvature curvature,
                                         std::uint64_t seed, std::uint64_t step,
                                         double probe_variance) {
  const auto fw = forward(spec, p, X);
  const Eigen::Index N = X.cols(), K = spec.output_dim;
  const int L1 = spec.num_layers();
  std::vector<KfacFactors<T>> out(L1);
  for (int l = 0; l < L1; ++l) {
    Mat<T> abar = fw.a[l];
    if (spec.bias == Bias::on) {  // homogeneous coordinate for the bias
      abar.conservativeResize(abar.rows() + 1, Eigen::NoChange);
      abar.row(abar.rows() - 1).setOnes();
    }
    out[l].A = abar * abar.transpose() / T(N);
    out[l].S = Mat<T>::Zero(spec.out_dim(l), spec.out_dim(l));
  }
  // S_l = (1/N) Σ_v w_v DS_v DS_vᵀ over cotangents v on the outputs, DS_v = ∂⟨v, f⟩/∂s_l.
  auto accumulate = [&](const Mat<T>& dF, T weight) {
    const auto g = backward(spec, p, fw, dF);
    for (int l = 0; l < L1; ++l) out[l].S.noalias() += weight * g.ds[l] * g.ds[l].transpose();
  };
  const Mat<T> probs = softmax_fprop<T>(fw.output());
  switch (curvature) {
    case KfacCurvature::gn_exact:  // E[v vᵀ] = I over all N·K output coordinates
      for (Eigen::Index n = 0; n < N; ++n)
        for (Eigen::Index k = 0; k < K; ++k) {
          Mat<T> dF = Mat<T>::Zero(K, N);
          dF(k, n) = T(1);
          accumulate(dF, T(1));
        }
      break;
    case KfacCurvature::fisher_exact:  // E over independent ŷ_n ~ p_n: v_n = p_n − e_ŷ
      for (Eigen::Index n = 0; n < N; ++n)
        for (Eigen::Index y = 0; y < K; ++y) {
          Mat<T> dF = Mat<T>::Zero(K, N);
          dF.col(n) = probs.col(n);
          dF(y, n) -= T(1);
          accumulate(dF, probs(y, n));
        }
      break;
    case KfacCurvature::fisher_sampled: {
      Mat<T> dF(K, N);
      for (Eigen::Index n = 0; n < N; ++n) {
        const double u = rng::uniform(seed, rng::Purpose::fisher_target, step, n);
        dF.col(n) = probs.col(n);
        dF(sample_class<T>(probs.col(n), u), n) -= T(1);
      }
      accumulate(dF, T(1));
      break;
    }
    case KfacCurvature::gn_sampled: {
      Mat<T> dF(K, N);
      const double sd = std::sqrt(probe_variance);
      for (Eigen::Index n = 0; n < N; ++n)
        for (Eigen::Index k = 0; k < K; ++k)
          dF(k, n) = T(sd * rng::normal(seed, rng::Purpose::gn_probe, step, n * K + k));
      accumulate(dF, T(1));
      break;
    }
  }
  for (auto& f : out) f.S /= T(N);
  return out;
}

namespace {
template <class T>
Mat<T> wbar(const MlpSpec& spec, const MlpParams<T>& p, int l) {
  if (spec.bias == Bias::off) return p.W[l];
  Mat<T> w(p.W[l].rows(), p.W[l].cols() + 1);
  w << p.W[l], p.b[l];
  return w;
}
}  // namespace

template <class T>
T kfac_norm(const MlpSpec& spec, const MlpParams<T>& p, const std::vector<KfacFactors<T>>& f) {
  T total = 0;
  for (int l = 0; l < spec.num_layers(); ++l) {
    const Mat<T> w = wbar(spec, p, l);
    total += (w.transpose() * f[l].S * w * f[l].A).trace();
  }
  return total;
}

template <class T>
Mat<T> kfac_block(const MlpSpec& spec, const KfacFactors<T>& f, int layer) {
  const Eigen::Index a = f.A.rows(), s = f.S.rows();
  WDLAB_CHECK(a * s == spec.layer_param_count(layer), "factor sizes do not match the layer");
  Mat<T> B(a * s, a * s);  // vec(W̄) column-major ⇒ block (i,j) of size s×s is A_ij S
  for (Eigen::Index i = 0; i < a; ++i)
    for (Eigen::Index j = 0; j < a; ++j) B.block(i * s, j * s, s, s) = f.A(i, j) * f.S;
  return B;
}

template <class T>
Mat<T> layer_block(const MlpSpec& spec, const Mat<T>& C, int layer) {
  const int off = spec.param_offset(layer), n = spec.layer_param_count(layer);
  return C.block(off, off, n, n);
}

#define WDLAB_INSTANTIATE(T)                                                                   \
  template Mat<T> gauss_newton<T>(const std::vector<Mat<T>>&);                                 \
  template Mat<T> generalized_gauss_newton_ce<T>(const std::vector<Mat<T>>&, const Mat<T>&);   \
  template Mat<T> fisher_exact_ce<T>(const MlpSpec&, const MlpParams<T>&, const Mat<T>&);      \
  template Mat<T> fisher_exact_gaussian<T>(const MlpSpec&, const MlpParams<T>&, const Mat<T>&); \
  template Mat<T> fisher_sampled_ce<T>(const MlpSpec&, const MlpParams<T>&, const Mat<T>&,     \
                                       int, std::uint64_t, std::uint64_t);                     \
  template std::vector<KfacFactors<T>> kfac_factors<T>(const MlpSpec&, const MlpParams<T>&,    \
                                                       const Mat<T>&, KfacCurvature,           \
                                                       std::uint64_t, std::uint64_t, double);  \
  template T kfac_norm<T>(const MlpSpec&, const MlpParams<T>&, const std::vector<KfacFactors<T>>&); \
  template Mat<T> kfac_block<T>(const MlpSpec&, const KfacFactors<T>&, int);                   \
  template Mat<T> layer_block<T>(const MlpSpec&, const Mat<T>&, int);
WDLAB_INSTANTIATE(double)
#undef WDLAB_INSTANTIATE

}  // namespace wdlab::ref

// Reference losses and K-FAC output samplers; the formulas are in reference/ops/loss.hpp.
#include "reference/ops/loss.hpp"

#include <fmt/format.h>

#include <cmath>

#include "common/errors.hpp"
#include "common/philox.hpp"

namespace wdlab::ref {

template <class T>
Mat<T> softmax_fprop(const Mat<T>& logits) {
  Mat<T> p(logits.rows(), logits.cols());
  for (Eigen::Index n = 0; n < logits.cols(); ++n) {
    p.col(n) = (logits.col(n).array() - logits.col(n).maxCoeff()).exp().matrix();
    p.col(n) /= p.col(n).sum();  // ≥ 1: the max entry contributes exp(0)
  }
  return p;
}

template <class T>
SoftmaxCrossEntropy<T> softmax_cross_entropy(const Mat<T>& logits, const Eigen::VectorXi& labels) {
  const Eigen::Index K = logits.rows(), N = logits.cols();
  WDLAB_CHECK(K >= 1 && N >= 1, "logits must be non-empty");
  WDLAB_CHECK(labels.size() == N, fmt::format("{} labels for {} examples", labels.size(), N));
  for (Eigen::Index n = 0; n < N; ++n)
    WDLAB_CHECK(labels(n) >= 0 && labels(n) < K,
                fmt::format("label {} of example {} outside [0, {})", labels(n), n, K));
  SoftmaxCrossEntropy<T> r;
  r.probs.resize(K, N);
  r.dlogits.resize(K, N);
  double total = 0;  // accumulated in double even for T = float: N terms of O(1)
  for (Eigen::Index n = 0; n < N; ++n) {
    const auto z = logits.col(n);
    Eigen::Index arg = 0;  // first maximum: strict '>'
    for (Eigen::Index k = 1; k < K; ++k)
      if (z(k) > z(arg)) arg = k;
    const T zmax = z(arg);
    const T sum = (z.array() - zmax).exp().sum();
    const T lse = zmax + std::log(sum);  // log Σ_k exp(z_k), no overflow
    total += double(lse - z(labels(n)));
    r.probs.col(n) = (z.array() - lse).exp().matrix();
    if (arg == labels(n)) ++r.correct;
  }
  r.loss = T(total / double(N));
  r.dlogits = r.probs;
  for (Eigen::Index n = 0; n < N; ++n) r.dlogits(labels(n), n) -= T(1);
  r.dlogits /= T(N);
  return r;
}

template <class T>
SquaredError<T> squared_error(const Mat<T>& out, const Mat<T>& target) {
  WDLAB_CHECK(out.rows() == target.rows() && out.cols() == target.cols(),
              fmt::format("output {}x{} vs target {}x{}", out.rows(), out.cols(), target.rows(),
                          target.cols()));
  WDLAB_CHECK(out.cols() >= 1, "empty batch");
  const T N = T(out.cols());
  SquaredError<T> r;
  const Mat<T> diff = out - target;
  r.loss = T(0.5) * diff.squaredNorm() / N;
  r.dout = diff / N;
  return r;
}

template <class T>
Eigen::VectorXi sample_categorical_targets(const Mat<T>& probs, std::uint64_t seed,
                                           std::uint64_t step) {
  const Eigen::Index K = probs.rows(), N = probs.cols();
  WDLAB_CHECK(K >= 1, "need at least one class");
  WDLAB_CHECK((probs.array() >= T(0)).all(), "probabilities must be non-negative");
  Eigen::VectorXi y(N);
  for (Eigen::Index n = 0; n < N; ++n) {
    const double u = rng::uniform(seed, rng::Purpose::fisher_target, step, std::uint64_t(n));
    Eigen::Index cls = K - 1;  // u ≥ Σp only by rounding
    double c = 0;
    for (Eigen::Index k = 0; k < K; ++k) {
      c += double(probs(k, n));
      if (u < c) {
        cls = k;
        break;
      }
    }
    y(n) = int(cls);
  }
  return y;
}

template <class T>
Mat<T> gaussian_probes(int K, int N, double variance, std::uint64_t seed, std::uint64_t step) {
  WDLAB_CHECK(K >= 1 && N >= 1, "probe shape must be positive");
  WDLAB_CHECK(variance >= 0, "variance must be non-negative");
  const double sd = std::sqrt(variance);
  Mat<T> v(K, N);
  for (int n = 0; n < N; ++n)
    for (int k = 0; k < K; ++k)
      v(k, n) = T(sd * rng::normal(seed, rng::Purpose::gn_probe, step,
                                   std::uint64_t(n) * std::uint64_t(K) + std::uint64_t(k)));
  return v;
}

#define WDLAB_INSTANTIATE(T)                                                                       \
  template Mat<T> softmax_fprop<T>(const Mat<T>&);                                                 \
  template SoftmaxCrossEntropy<T> softmax_cross_entropy<T>(const Mat<T>&, const Eigen::VectorXi&); \
  template SquaredError<T> squared_error<T>(const Mat<T>&, const Mat<T>&);                         \
  template Eigen::VectorXi sample_categorical_targets<T>(const Mat<T>&, std::uint64_t,             \
                                                         std::uint64_t);                           \
  template Mat<T> gaussian_probes<T>(int, int, double, std::uint64_t, std::uint64_t);
WDLAB_INSTANTIATE(double)
WDLAB_INSTANTIATE(float)
#undef WDLAB_INSTANTIATE

}  // namespace wdlab::ref

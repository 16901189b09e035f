// Reference losses and K-FAC output samplers: cross-entropy and squared-error gradients by central
// differences, log K at uniform logits, finiteness at huge logits, accuracy with ties; the
// categorical sampler's frequencies, determinism and index convention; Gaussian probe moments.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cmath>
#include <numeric>

#include "common/errors.hpp"
#include "ops_test_util.hpp"
#include "reference/ops/loss.hpp"

using namespace wdlab;
using namespace wdlab::ref;
using namespace wdlab::ref::testing;

namespace {

// Statistical acceptance bounds (not comparison tolerances): a correct sampler exceeds them
// with probability ~3e-7 (z = 5, one-sided); the draws are deterministic, so a pass is stable.
constexpr double kZ = 5.0;

/// Wilson–Hilferty upper quantile of χ²(dof) at standard-normal score z.
double chi_square_bound(int dof, double z) {
  const double a = 2.0 / (9.0 * dof);
  return dof * std::pow(1 - a + z * std::sqrt(a), 3);
}

Eigen::VectorXi random_labels(int K, int N, std::uint64_t stream) {
  Eigen::VectorXi y(N);
  for (int n = 0; n < N; ++n) y(n) = int(rng::below(7, rng::Purpose::theory, stream, n, K));
  return y;
}

Mat<double> repeat_column(const Eigen::VectorXd& p, int N) { return p.replicate(1, N); }

Eigen::VectorXd as_double(const Eigen::VectorXi& v) { return v.cast<double>(); }

}  // namespace

TEST_CASE("softmax cross-entropy: dlogits matches central differences of the mean loss") {
  const int K = 5, N = 7;
  const Mat<double> z = normal_mat(K, N, 91, 3.0);
  const Eigen::VectorXi y = random_labels(K, N, 92);
  const auto r = softmax_cross_entropy(z, y);
  const Mat<double> fd = fd_gradient<Mat<double>>(
      [&](const Mat<double>& zz) { return double(softmax_cross_entropy(zz, y).loss); }, z);
  WDLAB_EXPECT_PASS(
      compare("ce dlogits", span_of(r.dlogits), span_of(fd), tol::Kind::finite_difference));
  const Mat<double> p = softmax_fprop(z);
  WDLAB_EXPECT_PASS(
      compare("ce probs vs softmax_fprop", span_of(r.probs), span_of(p), tol::Kind::exact_double));
  double want = 0;  // −log p_y by the naive formula, safe at these logit sizes
  for (int n = 0; n < N; ++n) want -= std::log(p(y(n), n));
  want /= N;
  WDLAB_EXPECT_PASS(compare("ce loss vs −mean log p_y", std::span<const double>(&r.loss, 1),
                            std::span<const double>(&want, 1), tol::Kind::exact_double));
}

TEST_CASE("softmax cross-entropy: uniform logits give log K, ties count as the smallest class") {
  for (int K : {2, 10, 100}) {
    const int N = 6;
    const Mat<double> z = Mat<double>::Constant(K, N, 3.7);
    Eigen::VectorXi y(N);
    y << 0, 1, K - 1, 0, 1 % K, 0;
    const auto r = softmax_cross_entropy(z, y);
    const double logK = std::log(double(K));
    WDLAB_EXPECT_PASS(compare(fmt::format("ce uniform loss K={}", K),
                              std::span<const double>(&r.loss, 1),
                              std::span<const double>(&logK, 1), tol::Kind::exact_double));
    Mat<double> want = Mat<double>::Constant(K, N, 1.0 / K);
    for (int n = 0; n < N; ++n) want(y(n), n) -= 1;
    want /= N;
    WDLAB_EXPECT_PASS(compare(fmt::format("ce uniform dlogits K={}", K), span_of(r.dlogits),
                              span_of(want), tol::Kind::exact_double));
    const int zeros = int((y.array() == 0).count());  // every column ties: argmax is class 0
    MESSAGE(fmt::format("K={}: correct {} (labels equal to 0: {})", K, r.correct, zeros));
    CHECK(r.correct == zeros);
  }
}

TEST_CASE("softmax cross-entropy: huge logits stay finite and exact") {
  // Columns (1000, 0, −1000): p = (1, 0, 0) in double. Label 1 costs 1000, label 0 costs 0.
  Mat<double> z(3, 2);
  z << 1000, 1000, 0, 0, -1000, -1000;
  const Eigen::VectorXi y = (Eigen::VectorXi(2) << 1, 0).finished();
  const auto r = softmax_cross_entropy(z, y);
  const double want_loss = 500;
  WDLAB_EXPECT_PASS(compare("ce huge loss", std::span<const double>(&r.loss, 1),
                            std::span<const double>(&want_loss, 1), tol::Kind::exact_double));
  Mat<double> want_d(3, 2);
  want_d << 0.5, 0, -0.5, 0, 0, 0;
  WDLAB_EXPECT_PASS(
      compare("ce huge dlogits", span_of(r.dlogits), span_of(want_d), tol::Kind::exact_double));
  CHECK(r.correct == 1);
  // Far beyond exp's range, in both precisions.
  const Mat<double> zz = normal_mat(4, 5, 93, 1e30);
  const Eigen::VectorXi yy = random_labels(4, 5, 94);
  const auto rd = softmax_cross_entropy(zz, yy);
  const auto rf = softmax_cross_entropy(cast<float>(zz), yy);
  MESSAGE(fmt::format("logits ~1e30: loss double {:.6g}, float {:.6g}", rd.loss, rf.loss));
  CHECK(std::isfinite(rd.loss));
  CHECK(std::isfinite(rf.loss));
  CHECK(rd.dlogits.allFinite());
  CHECK(rf.dlogits.allFinite());
  CHECK(rd.loss > 0);
}

TEST_CASE("softmax cross-entropy: accuracy count and label checks") {
  Mat<double> z(3, 4);
  z << 1, 0, 5, 2,  //
      2, 0, 1, 2,   //
      0, 3, 1, 1;
  // argmax per column: 1, 2, 0, 0 (column 3 ties classes 0 and 1 → 0).
  const Eigen::VectorXi y = (Eigen::VectorXi(4) << 1, 2, 1, 1).finished();
  const auto r = softmax_cross_entropy(z, y);
  MESSAGE(fmt::format("correct {} of 4 (want 2)", r.correct));
  CHECK(r.correct == 2);
  CHECK_THROWS_AS(softmax_cross_entropy(z, (Eigen::VectorXi(4) << 1, 2, 3, 0).finished()),
                  InternalError);
  CHECK_THROWS_AS(softmax_cross_entropy(z, (Eigen::VectorXi(4) << 1, -1, 0, 0).finished()),
                  InternalError);
  CHECK_THROWS_AS(softmax_cross_entropy(z, (Eigen::VectorXi(3) << 1, 1, 0).finished()),
                  InternalError);
}

TEST_CASE("squared error: value and gradient by central differences") {
  Mat<double> f(2, 2), t(2, 2);
  f << 1, 2, 3, 4;
  t << 0, 4, 3, 1;
  // ½·(1/2)·((1² + 0²) + (2² + 3²)) = 14/4
  const double want = 14.0 / 4;
  const auto r = squared_error(f, t);
  WDLAB_EXPECT_PASS(compare("se loss by hand", std::span<const double>(&r.loss, 1),
                            std::span<const double>(&want, 1), tol::Kind::exact_double));
  const Mat<double> ff = normal_mat(4, 6, 101), tt = normal_mat(4, 6, 102);
  const auto rr = squared_error(ff, tt);
  const Mat<double> fd = fd_gradient<Mat<double>>(
      [&](const Mat<double>& x) { return double(squared_error(x, tt).loss); }, ff);
  WDLAB_EXPECT_PASS(
      compare("se dout", span_of(rr.dout), span_of(fd), tol::Kind::finite_difference));
  CHECK_THROWS_AS(squared_error(ff, Mat<double>(tt.leftCols(5))), InternalError);
}

TEST_CASE("losses: float vs double") {
  const Mat<double> z = normal_mat(10, 32, 111, 2.0);
  const Eigen::VectorXi y = random_labels(10, 32, 112);
  const auto rd = softmax_cross_entropy(z, y);
  const auto rf = softmax_cross_entropy(cast<float>(z), y);
  const double lf = rf.loss;
  WDLAB_EXPECT_PASS(compare("ce loss float", std::span<const double>(&lf, 1),
                            std::span<const double>(&rd.loss, 1), tol::Kind::float_forward));
  WDLAB_EXPECT_PASS(compare("ce dlogits float", span_of(to_double(rf.dlogits)), span_of(rd.dlogits),
                            tol::Kind::float_forward));
  const Mat<double> t = normal_mat(10, 32, 113);
  const auto sd = squared_error(z, t);
  const auto sf = squared_error(cast<float>(z), cast<float>(t));
  const double sl = sf.loss;
  WDLAB_EXPECT_PASS(compare("se loss float", std::span<const double>(&sl, 1),
                            std::span<const double>(&sd.loss, 1), tol::Kind::float_forward));
}

TEST_CASE("categorical targets: frequencies converge to p (χ² over 100k draws)") {
  const Eigen::VectorXd p = (Eigen::VectorXd(5) << 0.05, 0.1, 0.2, 0.3, 0.35).finished();
  const int K = int(p.size()), N = 100000;
  const Eigen::VectorXi draws = sample_categorical_targets(repeat_column(p, N), 1234, 17);
  Eigen::VectorXd count = Eigen::VectorXd::Zero(K);
  REQUIRE(((draws.array() >= 0) && (draws.array() < K)).all());
  for (int n = 0; n < N; ++n) count(draws(n)) += 1;
  const Eigen::VectorXd expected = N * p;
  const double chi2 = ((count - expected).array().square() / expected.array()).sum();
  const double bound = chi_square_bound(K - 1, kZ);
  MESSAGE(fmt::format("χ² = {:.3f} (dof {}), bound {:.2f}; freq {}", chi2, K - 1, bound,
                      fmt::join(std::vector<double>(count.data(), count.data() + K), ",")));
  CHECK(chi2 < bound);
  // Negative control: the same statistic against a slightly wrong p must blow the bound.
  Eigen::VectorXd q = p;
  q(0) += 0.01;
  q(4) -= 0.01;
  const double chi2_wrong = ((count - N * q).array().square() / (N * q).array()).sum();
  MESSAGE(
      fmt::format("χ² against a p off by 0.01: {:.1f} (must exceed {:.2f})", chi2_wrong, bound));
  CHECK(chi2_wrong > bound);
  // A one-hot column always draws its class.
  const Eigen::VectorXd onehot = (Eigen::VectorXd(5) << 0, 0, 1, 0, 0).finished();
  CHECK((sample_categorical_targets(repeat_column(onehot, 1000), 1, 2).array() == 2).all());
}

TEST_CASE("categorical targets: deterministic by (seed, step), index n = example") {
  const int K = 6, N = 2000;
  const Mat<double> probs = softmax_fprop(normal_mat(K, N, 121, 1.5));
  const Eigen::VectorXi a = sample_categorical_targets(probs, 99, 5);
  const Eigen::VectorXi b = sample_categorical_targets(probs, 99, 5);
  WDLAB_EXPECT_PASS(compare("targets same (seed, step)", span_of(as_double(a)),
                            span_of(as_double(b)), tol::Kind::exact_integer));
  const Eigen::VectorXi other_step = sample_categorical_targets(probs, 99, 6);
  const Eigen::VectorXi other_seed = sample_categorical_targets(probs, 100, 5);
  const auto differ_step = (a.array() != other_step.array()).count();
  const auto differ_seed = (a.array() != other_seed.array()).count();
  MESSAGE(fmt::format("draws differing: other step {} / {}, other seed {} / {}", differ_step, N,
                      differ_seed, N));
  CHECK(differ_step > N / 4);
  CHECK(differ_seed > N / 4);
  // Independent inversion: ŷ_n = #{y : cumsum_y ≤ u_n}, u_n = uniform(seed, fisher_target, step,
  // n).
  Eigen::VectorXd want(N);
  for (int n = 0; n < N; ++n) {
    std::vector<double> cum(K);
    std::partial_sum(probs.col(n).data(), probs.col(n).data() + K, cum.begin());
    const double u = rng::uniform(99, rng::Purpose::fisher_target, 5, n);
    want(n) = double(
        std::min<std::ptrdiff_t>(std::upper_bound(cum.begin(), cum.end(), u) - cum.begin(), K - 1));
  }
  WDLAB_EXPECT_PASS(compare("targets index convention", span_of(as_double(a)), span_of(want),
                            tol::Kind::exact_integer));
  const Eigen::VectorXi af = sample_categorical_targets(cast<float>(probs), 99, 5);
  const auto differ_float = (a.array() != af.array()).count();
  MESSAGE(fmt::format("float probs: {} of {} draws differ (only near-boundary u may)", differ_float,
                      N));
  CHECK(differ_float <= N / 1000);
}

TEST_CASE("Gaussian probes: index n·K + k, mean ≈ 0, variance ≈ the requested one") {
  const int K = 10, N = 10000;
  const double variance = 2.0;  // the paper code's K-FAC-G (MATH.md §9.4)
  const Mat<double> v = gaussian_probes<double>(K, N, variance, 42, 3);
  Mat<double> want(K, N);
  for (int n = 0; n < N; ++n)
    for (int k = 0; k < K; ++k)
      want(k, n) = std::sqrt(variance) *
                   rng::normal(42, rng::Purpose::gn_probe, 3, std::uint64_t(n) * K + k);
  WDLAB_EXPECT_PASS(
      compare("probes index convention", span_of(v), span_of(want), tol::Kind::exact_double));
  const double M = double(K) * N;
  const double mean = v.mean();
  const double var = (v.array() - mean).square().sum() / (M - 1);
  const double zero = 0;
  // sd of the sample mean √(var/M); of the sample variance var·√(2/(M−1)) (Gaussian).
  WDLAB_EXPECT_PASS(compare("probes mean (abs)", std::span<const double>(&mean, 1),
                            std::span<const double>(&zero, 1), kZ * std::sqrt(variance / M)));
  WDLAB_EXPECT_PASS(compare("probes variance (rel)", std::span<const double>(&var, 1),
                            std::span<const double>(&variance, 1), kZ * std::sqrt(2 / (M - 1))));
  const Mat<double> again = gaussian_probes<double>(K, N, variance, 42, 3);
  WDLAB_EXPECT_PASS(
      compare("probes same (seed, step)", span_of(again), span_of(v), tol::Kind::exact_integer));
  const Mat<double> other = gaussian_probes<double>(K, N, variance, 42, 4);
  CHECK((other.array() != v.array()).count() > M / 2);
  const Mat<float> vf = gaussian_probes<float>(K, N, variance, 42, 3);
  WDLAB_EXPECT_PASS(
      compare("probes float", span_of(to_double(vf)), span_of(v), tol::Kind::float_forward));
}

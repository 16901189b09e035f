// conv2d_patches and the KFC factors Ω, Γ (MATH.md §9.5) against patch vectors built by hand in
// the test, pixel by pixel, for Homogeneous::off and Homogeneous::on.
#include <doctest/doctest.h>

#include <algorithm>

#include "conv_test_util.hpp"
#include "reference/ops/conv2d.hpp"

using namespace wdlab;
using namespace wdlab::ref;
using namespace wdlab::test;

namespace {

/// ā_{n,t} for t = p·Q + q: x[n,c,p·σ−pad+r,q·σ−pad+s] at row (c·R + r)·S + s (0 outside the
/// image), then a 1 if homogeneous.
Vec<double> hand_patch(const Conv2dGeometry& g, const Mat<double>& x, int n, int t, Homogeneous h) {
  const int p = t / g.Q(), q = t % g.Q();
  Vec<double> a = Vec<double>::Zero(g.patch_size() + (h == Homogeneous::on ? 1 : 0));
  for (int c = 0; c < g.C; ++c)
    for (int r = 0; r < g.R; ++r)
      for (int s = 0; s < g.S; ++s) {
        const int hh = p * g.stride - g.pad + r, vv = q * g.stride - g.pad + s;
        if (hh >= 0 && hh < g.H && vv >= 0 && vv < g.W)
          a((c * g.R + r) * g.S + s) = x((c * g.H + hh) * g.W + vv, n);
      }
  if (h == Homogeneous::on) a(g.patch_size()) = 1;
  return a;
}

/// All hand patches side by side, column n·T + t.
Mat<double> hand_patches(const Conv2dGeometry& g, const Mat<double>& x, Homogeneous h) {
  const int T = g.locations();
  Mat<double> A(g.patch_size() + (h == Homogeneous::on ? 1 : 0), long(g.N) * T);
  for (int n = 0; n < g.N; ++n)
    for (int t = 0; t < T; ++t) A.col(long(n) * T + t) = hand_patch(g, x, n, t, h);
  return A;
}

/// (1/(N·T)) Σ_{n,t} ā āᵀ over the hand patches (one GEMM over the hand-built columns).
Mat<double> hand_input_factor(const Conv2dGeometry& g, const Mat<double>& x, Homogeneous h) {
  const Mat<double> A = hand_patches(g, x, h);
  return A * A.transpose() / (double(g.N) * g.locations());
}

/// ds_{n,t}[k] = ds[k·T + t, n]; with `transposed_layout` the wrong reading ds[t·K + k, n].
Mat<double> hand_output_factor(const Conv2dGeometry& g, const Mat<double>& ds,
                               bool transposed_layout = false) {
  const int T = g.locations();
  Mat<double> gamma = Mat<double>::Zero(g.K, g.K);
  for (int n = 0; n < g.N; ++n)
    for (int t = 0; t < T; ++t) {
      Vec<double> v(g.K);
      for (int k = 0; k < g.K; ++k)
        v(k) = transposed_layout ? ds(long(t) * g.K + k, n) : ds(long(k) * T + t, n);
      gamma += v * v.transpose();
    }
  return gamma / (double(g.N) * T);
}

const char* name_of(Homogeneous h) { return h == Homogeneous::on ? "hom=on" : "hom=off"; }

/// Symmetric exactly, and λ_min ≥ −tol·λ_max (reported as the negative part of λ_min/λ_max).
Comparison psd_check(const std::string& name, const Mat<double>& m) {
  const Eigen::SelfAdjointEigenSolver<Mat<double>> es(m);
  const double lmax = std::max(es.eigenvalues().maxCoeff(), 1e-300);
  const double neg = std::min(es.eigenvalues().minCoeff(), 0.0) / lmax, zero = 0.0;
  return compare(name, std::span<const double>(&neg, 1), std::span<const double>(&zero, 1),
                 tol::Kind::exact_double);
}

}  // namespace

TEST_CASE("conv2d_patches equals hand extraction, and w·patches + b is the conv") {
  const auto geoms = conv_geometries();
  for (Homogeneous h : {Homogeneous::off, Homogeneous::on})
    for (std::size_t i = 0; i < geoms.size(); ++i) {
      const Conv2dGeometry& g = geoms[i];
      const auto [x, w, dy, b] = operands(g, 500 + i, integers);
      const std::string d = std::string(name_of(h)) + " " + g.describe();
      const Mat<double> A = conv2d_patches(g, x, h);
      const Mat<double> Ah = hand_patches(g, x, h);
      REQUIRE(A.rows() == Ah.rows());
      REQUIRE(A.cols() == Ah.cols());
      WDLAB_EXPECT_PASS(compare("patches " + d, span_of(A), span_of(Ah), tol::Kind::exact_integer));
      // y[k·T + t, n] = ([w b]·A)[k, n·T + t]  (b only when homogeneous)
      Mat<double> wb = w;
      if (h == Homogeneous::on) {
        wb.conservativeResize(g.K, g.patch_size() + 1);
        wb.col(g.patch_size()) = b;
      }
      const Mat<double> z = wb * A;
      Mat<double> y, yz(long(g.K) * g.locations(), g.N);
      conv2d_fprop(g, x, w, h == Homogeneous::on ? &b : nullptr, y);
      for (int n = 0; n < g.N; ++n)
        for (int k = 0; k < g.K; ++k)
          for (int t = 0; t < g.locations(); ++t)
            yz(long(k) * g.locations() + t, n) = z(k, long(n) * g.locations() + t);
      WDLAB_EXPECT_PASS(
          compare("w·patches vs fprop " + d, span_of(yz), span_of(y), tol::Kind::exact_integer));
    }
  const Conv2dGeometry g = stride_control(), gm = stride_control_mutated();
  const auto [x, w, dy, b] = operands(g, 550, integers);
  const Mat<double> A = conv2d_patches(g, x, Homogeneous::off);
  const Mat<double> Am = hand_patches(gm, x, Homogeneous::off);
  WDLAB_EXPECT_FAIL(compare("patches vs hand, mutated stride", span_of(A), span_of(Am),
                            tol::Kind::exact_integer));
}

TEST_CASE("KFC input factor: Ω = (1/NT) Σ ā āᵀ, exactly symmetric, PSD, homogeneous border") {
  auto geoms = conv_geometries();
  geoms.push_back(chunked_geometry());  // Ω accumulated over several chunks
  for (std::size_t i = 0; i < geoms.size(); ++i) {
    const Conv2dGeometry& g = geoms[i];
    const auto [x, w, dy, b] = operands(g, 600 + i, normals);
    const Mat<double> off = conv2d_kfc_input_factor(g, x, Homogeneous::off);
    const Mat<double> on = conv2d_kfc_input_factor(g, x, Homogeneous::on);
    for (Homogeneous h : {Homogeneous::off, Homogeneous::on}) {
      const Mat<double>& omega = h == Homogeneous::on ? on : off;
      const std::string d = std::string(name_of(h)) + " " + g.describe();
      const Mat<double> ref = hand_input_factor(g, x, h);
      WDLAB_EXPECT_PASS(
          compare("Ω vs hand " + d, span_of(omega), span_of(ref), tol::Kind::exact_double));
      const Mat<double> omega_t = omega.transpose();
      WDLAB_EXPECT_PASS(
          compare("Ω vs Ωᵀ " + d, span_of(omega), span_of(omega_t), tol::Kind::exact_integer));
      WDLAB_EXPECT_PASS(psd_check("Ω PSD: min(λ_min,0)/λ_max " + d, omega));
    }
    // Homogeneous::on borders Ω_off with the mean patch and a 1.
    const int m = g.patch_size();
    const std::string d = g.describe();
    const Mat<double> top_left = on.topLeftCorner(m, m);
    WDLAB_EXPECT_PASS(compare("Ω_on[:m,:m] vs Ω_off " + d, span_of(top_left), span_of(off),
                              tol::Kind::exact_double));
    const Mat<double> mean = conv2d_patches(g, x, Homogeneous::off).rowwise().mean();
    const Mat<double> border = on.col(m).head(m);
    WDLAB_EXPECT_PASS(compare("Ω_on[:m,m] vs mean patch " + d, span_of(border), span_of(mean),
                              tol::Kind::exact_double));
    const Mat<double> corner = on.bottomRightCorner(1, 1), one = Mat<double>::Ones(1, 1);
    WDLAB_EXPECT_PASS(
        compare("Ω_on[m,m] vs 1 " + d, span_of(corner), span_of(one), tol::Kind::exact_double));
  }
  // Negative controls: a mutated stride, and the PSD check on an indefinite matrix.
  const Conv2dGeometry g = stride_control(), gm = stride_control_mutated();
  const auto [x, w, dy, b] = operands(g, 650, normals);
  const Mat<double> omega = conv2d_kfc_input_factor(g, x, Homogeneous::on);
  const Mat<double> ref_m = hand_input_factor(gm, x, Homogeneous::on);
  WDLAB_EXPECT_FAIL(compare("Ω vs hand, mutated stride", span_of(omega), span_of(ref_m),
                            tol::Kind::exact_double));
  const double lmax = Eigen::SelfAdjointEigenSolver<Mat<double>>(omega).eigenvalues().maxCoeff();
  const Mat<double> shifted =
      omega - 0.5 * lmax * Mat<double>::Identity(omega.rows(), omega.cols());
  WDLAB_EXPECT_FAIL(psd_check("PSD check on Ω − λ_max/2·I", shifted));
}

TEST_CASE("KFC output factor: Γ = (1/NT) Σ ds_{n,t} ds_{n,t}ᵀ over output locations") {
  const auto geoms = conv_geometries();
  for (std::size_t i = 0; i < geoms.size(); ++i) {
    const Conv2dGeometry& g = geoms[i];
    const auto [x, w, ds, b] = operands(g, 700 + i, normals);
    const std::string d = g.describe();
    const Mat<double> gamma = conv2d_kfc_output_factor(g, ds);
    const Mat<double> ref = hand_output_factor(g, ds);
    WDLAB_EXPECT_PASS(
        compare("Γ vs hand " + d, span_of(gamma), span_of(ref), tol::Kind::exact_double));
    const Mat<double> gamma_t = gamma.transpose();
    WDLAB_EXPECT_PASS(
        compare("Γ vs Γᵀ " + d, span_of(gamma), span_of(gamma_t), tol::Kind::exact_integer));
    WDLAB_EXPECT_PASS(psd_check("Γ PSD: min(λ_min,0)/λ_max " + d, gamma));
  }
  // Negative control: reading ds as T·K (location-major) instead of K·T.
  const Conv2dGeometry g = stride_control();
  const auto [x, w, ds, b] = operands(g, 750, normals);
  const Mat<double> gamma = conv2d_kfc_output_factor(g, ds);
  const Mat<double> wrong = hand_output_factor(g, ds, /*transposed_layout=*/true);
  WDLAB_EXPECT_FAIL(compare("Γ vs hand with ds read as T·K", span_of(gamma), span_of(wrong),
                            tol::Kind::exact_double));
}

TEST_CASE("1×1 conv, pad 0, stride 1: Ω is the pixel covariance (1/(N·H·W)) Σ x xᵀ") {
  const Conv2dGeometry g{3, 4, 5, 7, 2, 1, 1, 0, 1};
  const auto [x, w, dy, b] = operands(g, 800, normals);
  // Σ over pixels of x_{n,·,h,v} x_{n,·,h,v}ᵀ: column n viewed as H·W × C.
  Mat<double> cov = Mat<double>::Zero(g.C, g.C);
  for (int n = 0; n < g.N; ++n) {
    const Eigen::Map<const Mat<double>> pixels(x.col(n).data(), long(g.H) * g.W, g.C);
    cov += pixels.transpose() * pixels;
  }
  cov /= double(g.N) * g.H * g.W;
  const Mat<double> omega = conv2d_kfc_input_factor(g, x, Homogeneous::off);
  WDLAB_EXPECT_PASS(compare("Ω vs pixel covariance " + g.describe(), span_of(omega), span_of(cov),
                            tol::Kind::exact_double));
  // Where the premise is broken the identity must visibly fail: padding adds zero patches
  // (Ω shrinks by HW/PQ), stride 2 drops pixels.
  Conv2dGeometry padded = g, strided = g;
  padded.pad = 1;
  strided.stride = 2;
  const Mat<double> omega_pad = conv2d_kfc_input_factor(padded, x, Homogeneous::off);
  const Mat<double> omega_str = conv2d_kfc_input_factor(strided, x, Homogeneous::off);
  WDLAB_EXPECT_FAIL(compare("Ω(pad 1) vs pixel covariance", span_of(omega_pad), span_of(cov),
                            tol::Kind::exact_double));
  WDLAB_EXPECT_FAIL(compare("Ω(stride 2) vs pixel covariance", span_of(omega_str), span_of(cov),
                            tol::Kind::exact_double));
}

TEST_CASE("float KFC factors and patches match double") {
  auto geoms = conv_geometries();
  for (std::size_t i = 0; i < geoms.size(); ++i) {
    const Conv2dGeometry& g = geoms[i];
    const auto [xd0, wd0, dsd0, bd0] = operands(g, 900 + i, normals);
    const Mat<float> x = xd0.cast<float>(), ds = dsd0.cast<float>();
    const Mat<double> xd = x.cast<double>(), dsd = ds.cast<double>();
    const std::string d = g.describe();
    const auto k = tol::Kind::float_forward;
    for (Homogeneous h : {Homogeneous::off, Homogeneous::on}) {
      const Mat<double> of = conv2d_kfc_input_factor(g, x, h).cast<double>();
      const Mat<double> od = conv2d_kfc_input_factor(g, xd, h);
      WDLAB_EXPECT_PASS(
          compare(std::string("float Ω ") + name_of(h) + " " + d, span_of(of), span_of(od), k));
      const Mat<double> pf = conv2d_patches(g, x, h).cast<double>();
      const Mat<double> pd = conv2d_patches(g, xd, h);
      WDLAB_EXPECT_PASS(compare(std::string("float patches ") + name_of(h) + " " + d, span_of(pf),
                                span_of(pd), k));
    }
    const Mat<double> gf = conv2d_kfc_output_factor(g, ds).cast<double>();
    const Mat<double> gd = conv2d_kfc_output_factor(g, dsd);
    WDLAB_EXPECT_PASS(compare("float Γ " + d, span_of(gf), span_of(gd), k));
  }
  // Negative control: float Ω against the double Ω of the mutated stride.
  const Conv2dGeometry g = stride_control(), gm = stride_control_mutated();
  const auto [x, w, ds, b] = operands(g, 950, normals);
  const Mat<double> of =
      conv2d_kfc_input_factor(g, Mat<float>(x.cast<float>()), Homogeneous::on).cast<double>();
  const Mat<double> om = conv2d_kfc_input_factor(gm, x, Homogeneous::on);
  WDLAB_EXPECT_FAIL(compare("float Ω vs double Ω, mutated stride", span_of(of), span_of(om),
                            tol::Kind::float_forward));
}

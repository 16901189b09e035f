// The GEMM conv passes (reference/ops/conv2d.hpp) against the direct loops, against their own
// adjoint identities and against finite differences; float against double.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>

#include "common/cpu_runtime.hpp"
#include "common/errors.hpp"
#include "conv_test_util.hpp"
#include "reference/ops/conv2d.hpp"
#include "reference/ops/conv2d_direct.hpp"

using namespace wdlab;
using namespace wdlab::ref;
using namespace wdlab::test;

namespace {

/// ⟨a, b⟩ = Σ a ⊙ b.
double dot(const Mat<double>& a, const Mat<double>& b) { return a.cwiseProduct(b).sum(); }

Comparison compare_scalar(const std::string& name, double x, double ref, tol::Kind kind) {
  return compare(name, std::span<const double>(&x, 1), std::span<const double>(&ref, 1), kind);
}

/// w[k,c,R−1−r,s]: the kernel flipped in r (convolution instead of cross-correlation).
Mat<double> flipped_rows(const Conv2dGeometry& g, const Mat<double>& w) {
  Mat<double> f(w.rows(), w.cols());
  for (int c = 0; c < g.C; ++c)
    for (int r = 0; r < g.R; ++r)
      for (int s = 0; s < g.S; ++s)
        f.col((c * g.R + r) * g.S + s) = w.col((c * g.R + (g.R - 1 - r)) * g.S + s);
  return f;
}

Mat<double> to_double(const Mat<float>& m) { return m.cast<double>(); }

/// Exact-mode comparison of all three passes (with and without bias) for one geometry.
void check_exact(const Conv2dGeometry& g, std::uint64_t case_id) {
  const auto [x, w, dy, b] = operands(g, case_id, integers);
  const std::string d = g.describe();
  Mat<double> y, y0;
  conv2d_fprop(g, x, w, &b, y);
  conv2d_fprop_direct(g, x, w, &b, y0);
  WDLAB_EXPECT_PASS(compare("fprop+b " + d, span_of(y), span_of(y0), tol::Kind::exact_integer));
  conv2d_fprop(g, x, w, nullptr, y);
  conv2d_fprop_direct(g, x, w, nullptr, y0);
  WDLAB_EXPECT_PASS(compare("fprop " + d, span_of(y), span_of(y0), tol::Kind::exact_integer));

  Mat<double> dx, dx0;
  conv2d_bprop_data(g, dy, w, dx);
  conv2d_bprop_data_direct(g, dy, w, dx0);
  WDLAB_EXPECT_PASS(
      compare("bprop_data " + d, span_of(dx), span_of(dx0), tol::Kind::exact_integer));

  Mat<double> dw, dw0, dw_nb;
  Vec<double> db, db0;
  conv2d_bprop_filter(g, x, dy, dw, &db);
  conv2d_bprop_filter_direct(g, x, dy, dw0, &db0);
  WDLAB_EXPECT_PASS(
      compare("bprop_filter dw " + d, span_of(dw), span_of(dw0), tol::Kind::exact_integer));
  WDLAB_EXPECT_PASS(
      compare("bprop_filter db " + d, span_of(db), span_of(db0), tol::Kind::exact_integer));
  conv2d_bprop_filter(g, x, dy, dw_nb, static_cast<Vec<double>*>(nullptr));
  WDLAB_EXPECT_PASS(compare("bprop_filter dw (no db) " + d, span_of(dw_nb), span_of(dw0),
                            tol::Kind::exact_integer));
}

}  // namespace

TEST_CASE("exact mode: GEMM passes equal the direct loops bit for bit on integer data") {
  const auto geoms = conv_geometries();
  for (std::size_t i = 0; i < geoms.size(); ++i) check_exact(geoms[i], i);
}

TEST_CASE("exact mode: several im2col chunks with a partial last chunk") {
  const Conv2dGeometry g = chunked_geometry();
  const int chunk = conv2d_chunk_examples(g, sizeof(double));
  MESSAGE(g.describe() << ": " << chunk << " examples per chunk");
  REQUIRE(chunk < g.N);       // more than one chunk ...
  REQUIRE(g.N % chunk != 0);  // ... and the last one partial
  check_exact(g, 99);
  // The chunk size stays within [1, N]: one example over the budget still makes a chunk.
  CHECK(conv2d_chunk_examples({2, 64, 64, 64, 1, 3, 3, 1, 1}, sizeof(double)) == 1);
  CHECK(conv2d_chunk_examples({3, 1, 5, 5, 1, 3, 3, 1, 1}, sizeof(double)) == 3);
}

TEST_CASE("exact mode negative controls: a mutated stride and a flipped kernel are seen") {
  const Conv2dGeometry g = stride_control(), gm = stride_control_mutated();
  REQUIRE(g.P() == gm.P());
  REQUIRE(g.Q() == gm.Q());
  const auto [x, w, dy, b] = operands(g, 50, integers);
  Mat<double> y, ym, dx, dxm, dw, dwm;
  conv2d_fprop(g, x, w, &b, y);
  conv2d_fprop_direct(gm, x, w, &b, ym);
  WDLAB_EXPECT_FAIL(
      compare("fprop vs mutated stride", span_of(y), span_of(ym), tol::Kind::exact_integer));
  conv2d_bprop_data(g, dy, w, dx);
  conv2d_bprop_data_direct(gm, dy, w, dxm);
  WDLAB_EXPECT_FAIL(
      compare("bprop_data vs mutated stride", span_of(dx), span_of(dxm), tol::Kind::exact_integer));
  conv2d_bprop_filter(g, x, dy, dw, static_cast<Vec<double>*>(nullptr));
  conv2d_bprop_filter_direct(gm, x, dy, dwm, static_cast<Vec<double>*>(nullptr));
  WDLAB_EXPECT_FAIL(compare("bprop_filter vs mutated stride", span_of(dw), span_of(dwm),
                            tol::Kind::exact_integer));
  conv2d_fprop_direct(g, x, flipped_rows(g, w), &b, ym);
  WDLAB_EXPECT_FAIL(
      compare("fprop vs flipped kernel", span_of(y), span_of(ym), tol::Kind::exact_integer));
}

TEST_CASE("adjoint identities: <conv(x), dy> = <x, bprop_data(dy)> = <w, dw> + <b, db>") {
  const auto geoms = conv_geometries();
  for (std::size_t i = 0; i < geoms.size(); ++i) {
    const Conv2dGeometry& g = geoms[i];
    const auto [x, w, dy, b] = operands(g, 100 + i, normals);
    Mat<double> y, yb, dx, dw;
    Vec<double> db;
    conv2d_fprop(g, x, w, nullptr, y);
    conv2d_fprop(g, x, w, &b, yb);
    conv2d_bprop_data(g, dy, w, dx);
    conv2d_bprop_filter(g, x, dy, dw, &db);
    const double lhs = dot(y, dy);
    const std::string d = g.describe();
    WDLAB_EXPECT_PASS(
        compare_scalar("<x,dx> vs <y,dy> " + d, dot(x, dx), lhs, tol::Kind::exact_double));
    WDLAB_EXPECT_PASS(
        compare_scalar("<w,dw> vs <y,dy> " + d, dot(w, dw), lhs, tol::Kind::exact_double));
    WDLAB_EXPECT_PASS(compare_scalar("<w,dw>+<b,db> vs <y+b,dy> " + d, dot(w, dw) + b.dot(db),
                                     dot(yb, dy), tol::Kind::exact_double));
  }
  // Negative control: the adjoint of a conv with another stride is not this conv's adjoint.
  const Conv2dGeometry g = stride_control(), gm = stride_control_mutated();
  const auto [x, w, dy, b] = operands(g, 150, normals);
  Mat<double> y, dxm, dwm;
  conv2d_fprop(g, x, w, nullptr, y);
  conv2d_bprop_data(gm, dy, w, dxm);
  conv2d_bprop_filter(gm, x, dy, dwm, static_cast<Vec<double>*>(nullptr));
  WDLAB_EXPECT_FAIL(compare_scalar("<x,dx mutated stride> vs <y,dy>", dot(x, dxm), dot(y, dy),
                                   tol::Kind::exact_double));
  WDLAB_EXPECT_FAIL(compare_scalar("<w,dw mutated stride> vs <y,dy>", dot(w, dwm), dot(y, dy),
                                   tol::Kind::exact_double));
}

namespace {

/// L(x, w, b) = Σ dy ⊙ conv(x, w, b) under geometry g.
double loss(const Conv2dGeometry& g, const Mat<double>& x, const Mat<double>& w,
            const Vec<double>& b, const Mat<double>& dy) {
  Mat<double> y;
  conv2d_fprop(g, x, w, &b, y);
  return dot(y, dy);
}

/// Central differences of f over every entry of v (step 1e-5 relative, as the tolerance assumes).
template <class M, class F>
M central_differences(const M& v, F f) {
  M fd(v.rows(), v.cols());
  for (long i = 0; i < v.size(); ++i) {
    const double h = 1e-5 * std::max(1.0, std::abs(v.data()[i]));
    M vp = v, vm = v;
    vp.data()[i] += h;
    vm.data()[i] -= h;
    fd.data()[i] = (f(vp) - f(vm)) / (2 * h);
  }
  return fd;
}

}  // namespace

TEST_CASE("finite differences of L = sum dy*conv(x,w,b) match dx, dw, db") {
  auto geoms = conv_geometries();
  geoms.push_back(stride_control());
  for (std::size_t i = 0; i < geoms.size(); ++i) {
    const Conv2dGeometry& g = geoms[i];
    const auto [x, w, dy, b] = operands(g, 200 + i, normals);
    Mat<double> dx, dw;
    Vec<double> db;
    conv2d_bprop_data(g, dy, w, dx);
    conv2d_bprop_filter(g, x, dy, dw, &db);
    const Mat<double> fdx =
        central_differences(x, [&](const Mat<double>& v) { return loss(g, v, w, b, dy); });
    const Mat<double> fdw =
        central_differences(w, [&](const Mat<double>& v) { return loss(g, x, v, b, dy); });
    const Vec<double> fdb =
        central_differences(b, [&](const Vec<double>& v) { return loss(g, x, w, v, dy); });
    const std::string d = g.describe();
    WDLAB_EXPECT_PASS(
        compare("dx vs FD " + d, span_of(dx), span_of(fdx), tol::Kind::finite_difference));
    WDLAB_EXPECT_PASS(
        compare("dw vs FD " + d, span_of(dw), span_of(fdw), tol::Kind::finite_difference));
    WDLAB_EXPECT_PASS(
        compare("db vs FD " + d, span_of(db), span_of(fdb), tol::Kind::finite_difference));
  }
  // Negative control: gradients of the mutated-stride conv against differences of the true one.
  const Conv2dGeometry g = stride_control(), gm = stride_control_mutated();
  const auto [x, w, dy, b] = operands(g, 250, normals);
  Mat<double> dxm, dwm;
  conv2d_bprop_data(gm, dy, w, dxm);
  conv2d_bprop_filter(gm, x, dy, dwm, static_cast<Vec<double>*>(nullptr));
  const Mat<double> fdx =
      central_differences(x, [&](const Mat<double>& v) { return loss(g, v, w, b, dy); });
  const Mat<double> fdw =
      central_differences(w, [&](const Mat<double>& v) { return loss(g, x, v, b, dy); });
  WDLAB_EXPECT_FAIL(
      compare("dx mutated stride vs FD", span_of(dxm), span_of(fdx), tol::Kind::finite_difference));
  WDLAB_EXPECT_FAIL(
      compare("dw mutated stride vs FD", span_of(dwm), span_of(fdw), tol::Kind::finite_difference));
}

TEST_CASE("float instantiation matches double (GEMM and direct paths)") {
  auto geoms = conv_geometries();
  geoms.push_back(stride_control());
  geoms.push_back(chunked_geometry());
  const int chunk = conv2d_chunk_examples(chunked_geometry(), sizeof(float));
  REQUIRE(chunk < chunked_geometry().N);
  REQUIRE(chunked_geometry().N % chunk != 0);
  for (std::size_t i = 0; i < geoms.size(); ++i) {
    const Conv2dGeometry& g = geoms[i];
    // Operands rounded to float first, so both precisions see the same numbers.
    const auto [xd0, wd0, dyd0, bd0] = operands(g, 300 + i, normals);
    const Mat<float> x = xd0.cast<float>(), w = wd0.cast<float>(), dy = dyd0.cast<float>();
    const Vec<float> b = bd0.cast<float>();
    const Mat<double> xd = x.cast<double>(), wd = w.cast<double>(), dyd = dy.cast<double>();
    const Vec<double> bd = b.cast<double>();
    const std::string d = g.describe();

    Mat<float> y, y0, dx, dx0, dw, dw0;
    Vec<float> db, db0;
    Mat<double> yd, dxd, dwd;
    Vec<double> dbd;
    conv2d_fprop(g, x, w, &b, y);
    conv2d_fprop_direct(g, x, w, &b, y0);
    conv2d_fprop(g, xd, wd, &bd, yd);
    conv2d_bprop_data(g, dy, w, dx);
    conv2d_bprop_data_direct(g, dy, w, dx0);
    conv2d_bprop_data(g, dyd, wd, dxd);
    conv2d_bprop_filter(g, x, dy, dw, &db);
    conv2d_bprop_filter_direct(g, x, dy, dw0, &db0);
    conv2d_bprop_filter(g, xd, dyd, dwd, &dbd);
    const auto k = tol::Kind::float_forward;
    WDLAB_EXPECT_PASS(compare("float fprop " + d, span_of(to_double(y)), span_of(yd), k));
    WDLAB_EXPECT_PASS(compare("float fprop direct " + d, span_of(to_double(y0)), span_of(yd), k));
    WDLAB_EXPECT_PASS(compare("float bprop_data " + d, span_of(to_double(dx)), span_of(dxd), k));
    WDLAB_EXPECT_PASS(
        compare("float bprop_data direct " + d, span_of(to_double(dx0)), span_of(dxd), k));
    WDLAB_EXPECT_PASS(compare("float dw " + d, span_of(to_double(dw)), span_of(dwd), k));
    WDLAB_EXPECT_PASS(compare("float dw direct " + d, span_of(to_double(dw0)), span_of(dwd), k));
    const Vec<double> dbf = db.cast<double>(), dbf0 = db0.cast<double>();
    WDLAB_EXPECT_PASS(compare("float db " + d, span_of(dbf), span_of(dbd), k));
    WDLAB_EXPECT_PASS(compare("float db direct " + d, span_of(dbf0), span_of(dbd), k));
  }
  // Negative control: float conv against the double conv of the mutated stride.
  const Conv2dGeometry g = stride_control(), gm = stride_control_mutated();
  const auto [xd, wd, dyd, bd] = operands(g, 350, normals);
  Mat<float> y;
  Mat<double> ym;
  conv2d_fprop(g, Mat<float>(xd.cast<float>()), Mat<float>(wd.cast<float>()),
               static_cast<Vec<float>*>(nullptr), y);
  conv2d_fprop(gm, xd, wd, static_cast<Vec<double>*>(nullptr), ym);
  WDLAB_EXPECT_FAIL(compare("float fprop vs double mutated stride", span_of(to_double(y)),
                            span_of(ym), tol::Kind::float_forward));
}

TEST_CASE("bad geometries and shapes throw, naming the operand") {
  const Conv2dGeometry g = stride_control();
  const auto [x, w, dy, b] = operands(g, 400, normals);
  Mat<double> out, out2;
  Vec<double> vout;
  Conv2dGeometry bad = g;
  bad.stride = 0;
  CHECK_THROWS_AS(conv2d_fprop(bad, x, w, &b, out), UsageError);
  CHECK_THROWS_AS(conv2d_fprop_direct(bad, x, w, &b, out), UsageError);
  bad = g;
  bad.R = 8;  // larger than the padded 7×7 input
  CHECK_THROWS_AS(conv2d_bprop_data(bad, dy, w, out), UsageError);
  CHECK_THROWS_AS(conv2d_kfc_input_factor(bad, x, Homogeneous::off), UsageError);

  const Mat<double> x_short = x.topRows(x.rows() - 1), w_wide(g.K, g.patch_size() + 1);
  const Mat<double> dy_narrow = dy.leftCols(1);
  const Vec<double> b_long(g.K + 1);
  CHECK_THROWS_WITH_AS(conv2d_fprop(g, x_short, w, &b, out), doctest::Contains("x (C·H·W × N)"),
                       InternalError);
  CHECK_THROWS_WITH_AS(conv2d_fprop(g, x, w_wide, &b, out), doctest::Contains("w (K × C·R·S)"),
                       InternalError);
  CHECK_THROWS_WITH_AS(conv2d_fprop(g, x, w, &b_long, out), doctest::Contains("b (K)"),
                       InternalError);
  CHECK_THROWS_AS(conv2d_fprop_direct(g, x_short, w, &b, out), InternalError);
  CHECK_THROWS_AS(conv2d_bprop_data(g, dy_narrow, w, out), InternalError);
  CHECK_THROWS_AS(conv2d_bprop_data_direct(g, dy, w_wide, out), InternalError);
  CHECK_THROWS_AS(conv2d_bprop_filter(g, x_short, dy, out, &vout), InternalError);
  CHECK_THROWS_AS(conv2d_bprop_filter(g, x, dy_narrow, out, &vout), InternalError);
  CHECK_THROWS_AS(conv2d_bprop_filter_direct(g, x, dy_narrow, out, &vout), InternalError);
  CHECK_THROWS_AS(conv2d_patches(g, x_short, Homogeneous::on), InternalError);
  CHECK_THROWS_AS(conv2d_kfc_input_factor(g, x_short, Homogeneous::on), InternalError);
  CHECK_THROWS_AS(conv2d_kfc_output_factor(g, dy_narrow), InternalError);
  Mat<double> xy = x;
  CHECK_THROWS_AS(conv2d_fprop(g, xy, w, &b, xy), InternalError);  // y aliasing x
  // The well-formed call goes through (so the throws above are about the shapes).
  CHECK_NOTHROW(conv2d_fprop(g, x, w, &b, out));
  CHECK_NOTHROW(conv2d_bprop_filter(g, x, dy, out2, &vout));
}

TEST_CASE("the passes give the same bits on one thread and on two (chunks cut by geometry only)") {
  const Conv2dGeometry g = chunked_geometry();
  const auto [xd, wd, dyd, bd] = operands(g, 700, normals);
  const Mat<float> x = xd.cast<float>(), w = wd.cast<float>(), dy = dyd.cast<float>();
  const Vec<float> b = bd.cast<float>();
  struct Out {
    Mat<float> y, dx, dw;
    Vec<float> db;
  };
  auto passes = [&](int threads) {
    REQUIRE(set_cpu_threads(threads) == threads);
    Out o;
    conv2d_fprop(g, x, w, &b, o.y);
    conv2d_bprop_data(g, dy, w, o.dx);
    conv2d_bprop_filter(g, x, dy, o.dw, &o.db);
    return o;
  };
  const Out one = passes(1), two = passes(2);
  set_cpu_threads(0);  // back to the suite's setting
  CHECK(one.y == two.y);
  CHECK(one.dx == two.dx);
  CHECK(one.dw == two.dw);
  CHECK(one.db == two.db);
  // The control: the same dw summed over the examples in reverse order differs in the last bits,
  // so the equalities above would see a thread-dependent order of the sums.
  Mat<float> dw_rev = Mat<float>::Zero(g.K, g.patch_size()), part;
  Conv2dGeometry g1 = g;
  g1.N = 1;
  for (int n = g.N - 1; n >= 0; --n) {
    conv2d_bprop_filter(g1, Mat<float>(x.col(n)), Mat<float>(dy.col(n)), part,
                        static_cast<Vec<float>*>(nullptr));
    dw_rev += part;
  }
  CHECK(dw_rev != one.dw);
  CHECK((dw_rev - one.dw).cwiseAbs().maxCoeff() < 1e-3f * one.dw.cwiseAbs().maxCoeff());
}

TEST_CASE("the fused backward (conv2d_bprop) gives the bits of bprop_filter and bprop_data, on one thread and two") {
  std::vector<Conv2dGeometry> geoms = conv_geometries();
  geoms.push_back(chunked_geometry());
  for (std::size_t i = 0; i < geoms.size(); ++i) {
    const Conv2dGeometry& g = geoms[i];
    CAPTURE(g.describe());
    const auto [xd, wd, dyd, bd] = operands(g, 800 + i, normals);
    const Mat<float> x = xd.cast<float>(), w = wd.cast<float>(), dy = dyd.cast<float>();
    for (const int threads : {1, 2}) {
      REQUIRE(set_cpu_threads(threads) == threads);
      Mat<float> dw, dx, dw_f, dx_f, dw_only;
      Vec<float> db, db_f;
      conv2d_bprop_filter(g, x, dy, dw, &db);
      conv2d_bprop_data(g, dy, w, dx);
      conv2d_bprop(g, x, dy, w, dw_f, &db_f, &dx_f);
      CHECK(dw_f == dw);
      CHECK(db_f == db);
      CHECK(dx_f == dx);
      conv2d_bprop(g, x, dy, w, dw_only, static_cast<Vec<float>*>(nullptr), static_cast<Mat<float>*>(nullptr));
      CHECK(dw_only == dw);
      // Control: the data pass of another filter is seen.
      Mat<float> w2 = (w.array() * 1.5f + 0.25f).matrix(), dx2, dw2;
      conv2d_bprop(g, x, dy, w2, dw2, static_cast<Vec<float>*>(nullptr), &dx2);
      CHECK(dx2 != dx);
    }
  }
  set_cpu_threads(0);
  // dx may not alias an operand.
  const Conv2dGeometry g = conv_geometries()[0];
  const auto [xd, wd, dyd, bd] = operands(g, 900, normals);
  Mat<double> x = xd, dw;
  CHECK_THROWS(conv2d_bprop(g, x, dyd, wd, dw, static_cast<Vec<double>*>(nullptr), &x));
}

// The matrix-free products of theory/matfree.hpp against the dense reference matrices
// (ref::jacobian_theta, ref::gauss_newton, ref::fisher_exact_ce, ref::kfac_factors) on small nets.
#include <doctest/doctest.h>

#include "../support/small_mlp.hpp"

#include "common/tolerances.hpp"
#include "reference/mlp/curvature.hpp"
#include "reference/mlp/jacobian.hpp"
#include "theory/matfree.hpp"

using namespace wdlab;
using namespace wdlab::theory;
using wdlab::test::small_mlp;

namespace {
const double exact = tol::of(tol::Kind::exact_double);
}

TEST_CASE("G v, GGN v, J v and per-example J^T u . v match the dense matrices, with and without BN") {
  for (Norm norm : {Norm::none, Norm::batchnorm})
    for (Bias bias : {Bias::off, Bias::on}) {
      const auto pb = make_problem(small_mlp(2, Activation::relu, bias, norm), 9, 7, InputKind::gaussian);
      const auto fw = ref::forward(pb.spec, pb.params, pb.X);
      const auto J = ref::jacobian_theta(pb.spec, pb.params, pb.X, ref::JacobianMethod::backprop);
      const auto v = random_direction(pb.spec, 3, 0);
      const Vec<double> vf = v.flatten();
      INFO(pb.spec.describe());
      CHECK(rel_error(gn_times(pb.spec, pb.params, fw, v), ref::gauss_newton(J) * vf) < exact);
      CHECK(rel_error(ggn_times(pb.spec, pb.params, fw, v), ref::fisher_exact_ce(pb.spec, pb.params, pb.X) * vf) <
            exact);
      const Mat<double> Jv = jvp_theta(pb.spec, pb.params, fw, v);
      Mat<double> U = Mat<double>::Zero(3, 7);
      for (int n = 0; n < 7; ++n) U.col(n) = Jv.col(n) * 0.5 + Vec<double>::Constant(3, n);
      const Vec<double> dots = reverse_dots(pb.spec, pb.params, fw, U, v).colwise().sum();
      Vec<double> dense(7);
      for (int n = 0; n < 7; ++n) {
        CHECK(rel_error(Jv.col(n), J[n] * vf) < exact);
        dense(n) = U.col(n).dot(J[n] * vf);
      }
      CHECK(rel_error(dots, dense) < exact);
    }
}

TEST_CASE("layer-confined J v, J e_q columns side by side and ReverseDots over many cotangents match the dense matrices") {
  for (Norm norm : {Norm::none, Norm::batchnorm})
    for (Bias bias : {Bias::off, Bias::on})
      for (Activation act : {Activation::linear, Activation::relu}) {
        const auto pb = make_problem(small_mlp(3, act, bias, norm), 5, 7, InputKind::gaussian);
        const auto fw = ref::forward(pb.spec, pb.params, pb.X);
        const auto J = ref::jacobian_theta(pb.spec, pb.params, pb.X, ref::JacobianMethod::backprop);
        INFO(pb.spec.describe());
        // A direction confined to one layer (jvp_theta skips the zero products) and one that
        // is zero in the output layer only.
        for (int layer : {0, 2, 3}) {
          const auto v = random_direction(pb.spec, 11, 1, layer);
          const Mat<double> Jv = jvp_theta(pb.spec, pb.params, fw, v);
          for (int n = 0; n < 7; ++n) CHECK(rel_error(Jv.col(n), J[n] * v.flatten()) < exact);
        }
        auto v3 = random_direction(pb.spec, 11, 2);
        v3.W[3].setZero();
        if (bias == Bias::on) v3.b[3].setZero();
        const Mat<double> Jv3 = jvp_theta(pb.spec, pb.params, fw, v3);
        for (int n = 0; n < 7; ++n) CHECK(rel_error(Jv3.col(n), J[n] * v3.flatten()) < exact);
        // J e_q for some weights and (with biases) a bias entry of layer 1, all in one pass.
        const int off = pb.spec.param_offset(1);
        std::vector<int> idx{off, off + 3, off + 7, off + pb.spec.layer_param_count(1) - 1};
        const Mat<double> cols = jvp_columns(pb.spec, pb.params, fw, 1, idx);
        REQUIRE(cols.rows() == 3 * 7);
        REQUIRE(cols.cols() == 4);
        // Relative to the example's whole Jacobian: with BN a bias column is 0 (BN removes a
        // shift), exactly here and at rounding level in the dense matrix.
        for (int j = 0; j < 4; ++j)
          for (int n = 0; n < 7; ++n)
            CHECK((cols.col(j).segment(3 * n, 3) - J[n].col(idx[j])).norm() < exact * J[n].norm());
        CHECK_THROWS(jvp_columns(pb.spec, pb.params, fw, 1, {off - 1}));  // not in layer 1
        // ReverseDots: one object, several cotangents, two directions.
        const std::vector<Params> vs{random_direction(pb.spec, 11, 3), random_direction(pb.spec, 11, 4)};
        const ReverseDots reverse(pb.spec, pb.params, fw, vs);
        for (int k = 0; k < 3; ++k) {
          Mat<double> U = Mat<double>::Zero(3, 7);
          U.row(k).setConstant(1.0 + k);
          U(0, k) -= 0.5;
          const auto d = reverse(U);
          for (std::size_t j = 0; j < vs.size(); ++j) {
            Vec<double> dense(7);
            for (int n = 0; n < 7; ++n) dense(n) = U.col(n).dot(J[n] * vs[j].flatten());
            CHECK(rel_error(Vec<double>(d[j].colwise().sum().transpose()), dense) < exact);
          }
        }
      }
}

TEST_CASE("K-FAC factors by one backward pass per output equal the reference's N*K passes (no BN)") {
  for (Bias bias : {Bias::off, Bias::on}) {
    const auto pb = make_problem(small_mlp(3, Activation::relu, bias), 4, 9, InputKind::gaussian);
    for (auto c : {ref::KfacCurvature::gn_exact, ref::KfacCurvature::fisher_exact}) {
      const auto a = kfac_factors_batched(pb.spec, pb.params, pb.X, c);
      const auto b = ref::kfac_factors(pb.spec, pb.params, pb.X, c);
      for (std::size_t l = 0; l < a.size(); ++l) {
        CHECK(rel_error(a[l].A, b[l].A) < exact);
        CHECK(rel_error(a[l].S, b[l].S) < exact);
      }
    }
  }
  // With BN the partial S over all examples is the reference's S times N.
  const auto bn = make_problem(small_mlp(2, Activation::relu, Bias::off, Norm::batchnorm), 4, 6, InputKind::gaussian);
  const auto ref_f = ref::kfac_factors(bn.spec, bn.params, bn.X, ref::KfacCurvature::gn_exact);
  const Mat<double> S = kfac_S_partial(bn.spec, bn.params, bn.X, 1, ref::KfacCurvature::gn_exact, 6);
  CHECK(rel_error(Mat<double>(S / 6.0), ref_f[1].S) < exact);
  // A wrong factor (the batched pass with BN) is refused, not silently wrong.
  CHECK_THROWS(kfac_factors_batched(bn.spec, bn.params, bn.X, ref::KfacCurvature::gn_exact));
}

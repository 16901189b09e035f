// The matrix-free products of theory/matfree.hpp against the dense reference matrices
// (ref::jacobian_theta, ref::gauss_newton, ref::fisher_exact_ce, ref::kfac_factors) on small nets.
#include <doctest/doctest.h>

#include "../support/small_mlp.hpp"

#include "common/tolerances.hpp"
#include "reference/curvature.hpp"
#include "reference/jacobian.hpp"
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

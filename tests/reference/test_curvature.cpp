// Curvature matrices and K-FAC factors of the reference: exactness where K-FAC is exact,
// inexactness where it is not, convergence of the sampled estimators.
#include <doctest/doctest.h>

#include "../support/small_mlp.hpp"
#include <fmt/format.h>

#include "common/compare.hpp"
#include "reference/mlp/curvature.hpp"
#include "reference/ops/loss.hpp"
#include "reference/mlp/jacobian.hpp"
#include "theory/problem.hpp"

using namespace wdlab;
using wdlab::test::small_mlp;
using wdlab::test::span_of;
using namespace wdlab::ref;

namespace {

Mat<double> exact_gn(const theory::Problem& pb) {
  return gauss_newton(jacobian_theta(pb.spec, pb.params, pb.X, JacobianMethod::backprop));
}

}  // namespace

TEST_CASE("K-FAC is exact for one dense layer and one example (GN and Fisher)") {
  for (Bias b : {Bias::off, Bias::on}) {
    const auto pb = theory::make_problem(small_mlp(0, Activation::linear, b), 11, 1,
                                         theory::InputKind::gaussian);
    const auto gn = kfac_factors(pb.spec, pb.params, pb.X, KfacCurvature::gn_exact);
    const auto fi = kfac_factors(pb.spec, pb.params, pb.X, KfacCurvature::fisher_exact);
    const auto c1 = compare("kfac gn block, 1 layer 1 example", span_of(kfac_block(pb.spec, gn[0], 0)),
                            span_of(exact_gn(pb)), tol::Kind::exact_double);
    const auto c2 = compare("kfac fisher block, 1 layer 1 example",
                            span_of(kfac_block(pb.spec, fi[0], 0)),
                            span_of(fisher_exact_ce(pb.spec, pb.params, pb.X)), tol::Kind::exact_double);
    MESSAGE(c1.line() << "\n" << c2.line());
    CHECK(c1.pass);
    CHECK(c2.pass);
  }
}

TEST_CASE("K-FAC GN blocks are exact for deep linear nets and not for ReLU nets") {
  for (int depth : {1, 2, 4}) {
    const auto lin = theory::make_problem(small_mlp(depth, Activation::linear), 20 + depth, 12,
                                          theory::InputKind::gaussian);
    const auto relu = theory::make_problem(small_mlp(depth, Activation::relu), 20 + depth, 12,
                                           theory::InputKind::gaussian);
    const Mat<double> G = exact_gn(lin), Gr = exact_gn(relu);
    const auto f = kfac_factors(lin.spec, lin.params, lin.X, KfacCurvature::gn_exact);
    const auto fr = kfac_factors(relu.spec, relu.params, relu.X, KfacCurvature::gn_exact);
    for (int l = 0; l < lin.spec.num_layers(); ++l) {
      const auto c = compare(fmt::format("linear L={} layer {}", depth, l + 1),
                             span_of(kfac_block(lin.spec, f[l], l)), span_of(layer_block(lin.spec, G, l)),
                             tol::Kind::exact_double);
      MESSAGE(c.line());
      CHECK(c.pass);
    }
    // ReLU: the first layer's S depends on the input through the activation pattern.
    const auto cr = compare(fmt::format("relu L={} layer 1", depth),
                            span_of(kfac_block(relu.spec, fr[0], 0)),
                            span_of(layer_block(relu.spec, Gr, 0)), tol::Kind::exact_double);
    MESSAGE(cr.line());
    CHECK(cr.rel_fro > 1e-3);
  }
}

TEST_CASE("kfac_norm equals the quadratic form with the dense K-FAC blocks") {
  const auto pb = theory::make_problem(small_mlp(2, Activation::relu, Bias::on), 3, 10,
                                       theory::InputKind::gaussian);
  const auto f = kfac_factors(pb.spec, pb.params, pb.X, KfacCurvature::fisher_exact);
  const Vec<double> theta = pb.params.flatten();
  double dense = 0;
  for (int l = 0; l < pb.spec.num_layers(); ++l) {
    const Vec<double> t = theta.segment(pb.spec.param_offset(l), pb.spec.layer_param_count(l));
    dense += t.dot(kfac_block(pb.spec, f[l], l) * t);
  }
  const double trace_form = kfac_norm(pb.spec, pb.params, f);
  CHECK(std::abs(trace_form - dense) <= tol::of(tol::Kind::exact_double) * std::abs(dense));
}

TEST_CASE("sampled K-FAC factors converge to their expectations") {
  const auto pb = theory::make_problem(small_mlp(2, Activation::relu, Bias::off, Norm::batchnorm), 9,
                                       8, theory::InputKind::gaussian);
  struct Case {
    KfacCurvature sampled, exact;
    double variance, scale;
    const char* name;
  };
  // The official code's K-FAC-G probes have covariance 2I (MATH.md §9.4): variance 2 gives 2·S.
  for (const Case cs : {Case{KfacCurvature::fisher_sampled, KfacCurvature::fisher_exact, 1.0, 1.0, "fisher"},
                        Case{KfacCurvature::gn_sampled, KfacCurvature::gn_exact, 1.0, 1.0, "gn"},
                        Case{KfacCurvature::gn_sampled, KfacCurvature::gn_exact, 2.0, 2.0, "gn var 2"}}) {
    const auto exact = kfac_factors(pb.spec, pb.params, pb.X, cs.exact);
    std::vector<double> errs;
    Mat<double> mean = Mat<double>::Zero(exact[0].S.rows(), exact[0].S.cols());
    int done = 0;
    for (int target : {16, 256, 4096}) {
      for (; done < target; ++done)
        mean += kfac_factors(pb.spec, pb.params, pb.X, cs.sampled, 77, done, cs.variance)[0].S;
      const Mat<double> avg = mean / double(done);
      errs.push_back(theory::rel_error(avg, cs.scale * exact[0].S));
    }
    MESSAGE(fmt::format("{}: rel err of S_1 after 16/256/4096 steps: {:.3e} {:.3e} {:.3e}", cs.name,
                        errs[0], errs[1], errs[2]));
    CHECK(errs[2] < errs[0] / 4);  // 1/√n over ×256 samples is ×16; leave room for noise
    CHECK(errs[2] < 0.05);
  }
}

TEST_CASE("Monte-Carlo Fisher is unbiased: its error shrinks with the sample") {
  const auto pb = theory::make_problem(small_mlp(1, Activation::relu), 4, 8, theory::InputKind::gaussian);
  const Mat<double> F = fisher_exact_ce(pb.spec, pb.params, pb.X);
  const double e_small = theory::rel_error(fisher_sampled_ce(pb.spec, pb.params, pb.X, 80, 1, 0), F);
  const double e_large = theory::rel_error(fisher_sampled_ce(pb.spec, pb.params, pb.X, 80000, 1, 0), F);
  MESSAGE(fmt::format("MC Fisher rel err n=80: {:.3e}, n=80000: {:.3e}", e_small, e_large));
  CHECK(e_large < e_small / 10);
  CHECK(e_large < 0.03);
}

TEST_CASE("softmax columns are probability vectors, stable for large logits") {
  Mat<double> z(3, 2);
  z << 1000, -5, 1001, 0, 999, 5;
  const Mat<double> p = softmax_fprop<double>(z);
  CHECK(p.allFinite());
  CHECK(p.col(0).sum() == doctest::Approx(1.0));
  CHECK(p(1, 0) == doctest::Approx(std::exp(1.0) / (1 + std::exp(1.0) + std::exp(-1.0))));
}

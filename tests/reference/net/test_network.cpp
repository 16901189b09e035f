// The reference network engine: whole-network finite differences for every layer kind (MLP,
// VGG, ResNet, ± BN), agreement with the independent MLP reference of the theory suite, and
// K-FAC statistics against the MLP's factors.
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <algorithm>
#include <limits>

#include "common/compare.hpp"
#include "common/errors.hpp"
#include "common/bn_relu_fusion.hpp"
#include "common/model_zoo.hpp"
#include "common/philox.hpp"
#include "reference/mlp/curvature.hpp"
#include "reference/mlp/mlp.hpp"
#include "reference/net/network.hpp"
#include "reference/ops/activation.hpp"
#include "reference/optim/kfac.hpp"
#include "reference/optim/optimizer.hpp"

using namespace wdlab;
using namespace wdlab::ref;
using namespace wdlab::optim;

namespace {

std::span<const double> span_of(const Mat<double>& m) { return {m.data(), std::size_t(m.size())}; }

Mat<double> gaussian(int rows, int cols, std::uint64_t seed) {
  Mat<double> m(rows, cols);
  for (Eigen::Index i = 0; i < m.size(); ++i) m.data()[i] = rng::normal(seed, rng::Purpose::synthetic, 0, i);
  return m;
}

/// Σ w ⊙ logits with fixed random w: a loss whose gradient exercises every output.
double probe_loss(const NetworkSpec& spec, const ParamStore<double>& p, const Mat<double>& x,
                  const Mat<double>& w) {
  return network_forward(spec, p, x, BnMode::train).logits().cwiseProduct(w).sum();
}

/// Central differences for every trainable scalar and the input; the max-pool and ReLU
/// decisions must not flip under ±h, which the random smooth inputs make overwhelmingly likely;
/// the check reports the evidence either way.
void check_gradients(const NetworkSpec& spec, std::uint64_t seed, int N) {
  spec.validate();
  auto p = init_params<double>(spec, seed, Init::glorot_uniform);
  for (std::size_t i = 0; i < p.values.size(); ++i)  // nonzero biases so they are tested
    if (p.info[i].role == ParamRole::bias) p.values[i] = gaussian(int(p.values[i].rows()), 1, seed + i) * 0.1;
  const Mat<double> x = gaussian(spec.input.size(), N, seed + 100);
  const Mat<double> w = gaussian(spec.classes, N, seed + 200);
  const auto fw = network_forward(spec, p, x, BnMode::train);
  const auto bw = network_backward(spec, p, fw, w, InputGrad::compute);
  const double h = 1e-6;
  // Central differences carry an absolute error ~ eps·|loss|/h; a gradient that is exactly zero
  // (a conv bias right before BN) is compared against that floor instead of relatively.
  double scale = 0;
  for (const auto& g : bw.grads.values) scale = std::max(scale, g.size() ? g.cwiseAbs().maxCoeff() : 0.0);
  const double abs_floor = tol::of(tol::Kind::finite_difference) * scale;
  for (std::size_t t = 0; t < p.values.size(); ++t) {
    if (!p.info[t].trainable()) continue;
    Mat<double> fd(p.values[t].rows(), p.values[t].cols());
    for (Eigen::Index e = 0; e < fd.size(); ++e) {
      auto pp = p, pm = p;
      pp.values[t].data()[e] += h;
      pm.values[t].data()[e] -= h;
      fd.data()[e] = (probe_loss(spec, pp, x, w) - probe_loss(spec, pm, x, w)) / (2 * h);
    }
    const auto c = compare(fmt::format("{} {}", spec.model, p.info[t].name),
                           span_of(bw.grads.values[t]), span_of(fd), tol::Kind::finite_difference);
    const bool zero_grad = span_of(fd).size() > 0 && fd.cwiseAbs().maxCoeff() <= abs_floor;
    MESSAGE(c.line() << (zero_grad ? fmt::format("  (zero gradient: max_abs vs floor {:.1e})", abs_floor) : ""));
    CHECK((c.pass || (zero_grad && c.max_abs <= abs_floor)));
  }
  Mat<double> fdx(x.rows(), x.cols());
  for (Eigen::Index e = 0; e < x.size(); ++e) {
    Mat<double> xp = x, xm = x;
    xp.data()[e] += h;
    xm.data()[e] -= h;
    fdx.data()[e] = (probe_loss(spec, p, xp, w) - probe_loss(spec, p, xm, w)) / (2 * h);
  }
  const auto cx = compare(spec.model + " input", span_of(bw.d_input), span_of(fdx), tol::Kind::finite_difference);
  MESSAGE(cx.line());
  CHECK(cx.pass);
}

}  // namespace

TEST_CASE("whole-network gradients by central differences: MLP ± BN") {
  for (Norm n : {Norm::none, Norm::batchnorm})
    check_gradients(zoo::mlp(Shape{5, 1, 1}, 3, {.depth = 2, .width = 4, .bias = Bias::on, .norm = n}), 1, 4);
}

TEST_CASE("whole-network gradients by central differences: tiny VGG11 ± BN (conv, pool, flatten)") {
  for (Norm n : {Norm::none, Norm::batchnorm})
    check_gradients(zoo::vgg(11, Shape{2, 8, 8}, 3, {.norm = n, .width_mult = 1.0 / 32}), 2, 3);
}

TEST_CASE("whole-network gradients by central differences: tiny ResNet8 ± BN (residual, GAP)") {
  for (Norm n : {Norm::none, Norm::batchnorm})
    check_gradients(zoo::resnet(8, 1, Shape{2, 6, 6}, 3, {.norm = n, .width_mult = 0.25}), 3, 3);
}

TEST_CASE("whole-network gradients by central differences: every attribute-free layer kind between two dense layers") {
  // The kinds SpecBuilder::layer builds from the table alone (relu, global_avgpool, flatten,
  // residual_add as x + x, tanh, ...): each one's dispatch in the engine, not only its op.
  int n = 0;
  for (LayerKind k : all_layer_kinds) {
    if (layer_info(k).fields != LayerFields::none) continue;
    SpecBuilder b(to_string(k), Shape{2, 2, 3}, 3);
    b.conv("conv", 2, 1, 1, 0, Bias::on);
    b.layer(k);
    b.flatten();
    b.dense("fc", 3, Bias::on);
    check_gradients(b.finish(), 5 + std::uint64_t(k), 3);
    ++n;
  }
  CHECK(n >= 5);
}

TEST_CASE("layer-kind table: SpecBuilder::layer refuses kinds with fields, validate counts inputs from it") {
  SpecBuilder b("x", Shape{2, 2, 2}, 8);
  CHECK_THROWS_AS(b.layer(LayerKind::conv2d), InternalError);
  CHECK_THROWS_AS(b.layer(LayerKind::maxpool), InternalError);
  b.layer(LayerKind::flatten);
  NetworkSpec spec = b.finish();
  CHECK(spec.layers.at(0).out == Shape{8, 1, 1});
  spec.layers.at(0).kind = LayerKind::residual_add;  // a join with one input
  CHECK_THROWS_WITH_AS(spec.validate(), doctest::Contains("needs 2 input(s)"), UsageError);
  for (LayerKind k : all_layer_kinds) CHECK(to_string(k) == std::string(layer_info(k).name));
}

TEST_CASE("the engine's MLP equals the theory suite's independent MLP reference") {
  for (Norm norm : {Norm::none, Norm::batchnorm}) {
    const auto spec = zoo::mlp(Shape{5, 1, 1}, 3, {.depth = 2, .width = 6, .bias = Bias::on, .norm = norm});
    MlpSpec ms{.input_dim = 5, .depth = 2, .width = 6, .output_dim = 3, .activation = Activation::relu,
               .bias = Bias::on, .norm = norm, .bn_eps = 1e-3};
    auto p = init_params<double>(spec, 4, Init::glorot_uniform);
    MlpParams<double> mp;
    for (int l = 0; l <= 2; ++l) {
      const std::string fc = fmt::format("fc{}", l);
      p.at(fc + ".bias") = gaussian(int(p.at(fc + ".bias").rows()), 1, 50 + l);
      mp.W.push_back(p.at(fc + ".weight"));
      mp.b.push_back(p.at(fc + ".bias"));
    }
    const Mat<double> x = gaussian(5, 7, 9);
    const auto fw = network_forward(spec, p, x, BnMode::train);
    const auto mfw = forward(ms, mp, x);
    const auto c = compare("logits engine vs MLP reference", span_of(fw.logits()),
                           span_of(mfw.output()), tol::Kind::exact_double);
    MESSAGE(c.line());
    CHECK(c.pass);
    const Mat<double> w = gaussian(3, 7, 10);
    const auto bw = network_backward(spec, p, fw, w);
    const auto mbw = backward(ms, mp, mfw, w);
    for (int l = 0; l <= 2; ++l) {
      const auto cw = compare(fmt::format("dW fc{}", l), span_of(bw.grads.at(fmt::format("fc{}.weight", l))),
                              span_of(mbw.dW[l]), tol::Kind::exact_double);
      CHECK(cw.pass);
    }
    // K-FAC-G statistics with the same probes (same RNG stream) equal the MLP reference's.
    const auto stats = kfac_statistics(spec, p, x, CurvatureKind::gauss_newton, 1.0, 5, 3);
    const auto mf = kfac_factors(ms, mp, x, KfacCurvature::gn_sampled, 5, 3, 1.0);
    REQUIRE(stats.size() == 3);
    for (int l = 0; l <= 2; ++l) {
      const auto ca = compare(fmt::format("A fc{}", l), span_of(stats[l].A), span_of(mf[l].A), tol::Kind::exact_double);
      const auto cs = compare(fmt::format("S fc{}", l), span_of(stats[l].S), span_of(mf[l].S), tol::Kind::exact_double);
      MESSAGE(ca.line() << "\n" << cs.line());
      CHECK(ca.pass);
      CHECK(cs.pass);
    }
    const auto fs = kfac_statistics(spec, p, x, CurvatureKind::fisher, 1.0, 5, 3);
    const auto mfs = kfac_factors(ms, mp, x, KfacCurvature::fisher_sampled, 5, 3);
    const auto cf = compare("S fc0 (Fisher, sampled)", span_of(fs[0].S), span_of(mfs[0].S), tol::Kind::exact_double);
    MESSAGE(cf.line());
    CHECK(cf.pass);
  }
}

TEST_CASE("BN running statistics move toward the batch statistics, eval mode uses them") {
  const auto spec = zoo::mlp(Shape{4, 1, 1}, 2, {.depth = 1, .width = 3, .norm = Norm::batchnorm});
  auto p = init_params<double>(spec, 1, Init::glorot_uniform);
  const Mat<double> x = gaussian(4, 64, 2) * 3.0;
  const auto fw = network_forward(spec, p, x, BnMode::train);
  update_running_stats(spec, p, fw);
  const Mat<double>& s = fw.out[0];  // fc0 output (pre-BN)
  const Vec<double> mean = s.rowwise().mean();
  CHECK((p.at("bn0.running_mean") - 0.01 * mean).norm() < 1e-12);  // 0.99·0 + 0.01·μ
  // A network at its running statistics differs from train mode until they converge.
  const auto ev = network_forward(spec, p, x, BnMode::eval);
  CHECK((ev.logits() - fw.logits()).norm() > 1e-3);
}

TEST_CASE("model zoo: shapes, parameter names and counts") {
  const auto r32 = zoo::resnet(32, 4, Shape{3, 32, 32}, 10, {});
  // ResNet32×4: 3 stages × 5 blocks, widths 64/128/256, two projection shortcuts.
  int convs = 0, shortcuts = 0;
  for (const auto& l : r32.layers) {
    convs += l.kind == LayerKind::conv2d;
    shortcuts += l.kind == LayerKind::conv2d && l.name.find("shortcut") != std::string::npos;
  }
  // conv1 gives 16·4 = 64 channels, so only stages 2 and 3 (stride 2, wider) need projections.
  CHECK(shortcuts == 2);
  CHECK(convs == 1 + 3 * 5 * 2 + 2);
  const auto v16 = zoo::vgg(16, Shape{3, 32, 32}, 10, {});
  int vconvs = 0;
  for (const auto& l : v16.layers) vconvs += l.kind == LayerKind::conv2d;
  CHECK(vconvs == 13);
  CHECK(v16.layers.back().in.size() == 512);  // a single dense head on 512×1×1
  CHECK(v16.params().front().name == "features.0.weight");
  const auto m = zoo::mlp(Shape{1, 28, 28}, 10, {.depth = 2, .width = 1000});
  CHECK(m.num_trainable() == 784 * 1000 + 1000 + 1000 * 1000 + 1000 + 1000 * 10 + 10);
}

TEST_CASE("K-FAC's low-rank preconditioning through gradient factors equals the dense one") {
  const auto spec = zoo::mlp(Shape{30, 1, 1}, 5, {.depth = 2, .width = 40, .bias = Bias::on});
  auto p = init_params<double>(spec, 3, Init::glorot_uniform);
  const Mat<double> x = gaussian(30, 8, 4);
  OptimConfig oc;
  oc.kind = OptimizerKind::kfac_g;
  oc.kfac.factor_init = FactorInit::data_pass;
  for (Regularization reg : {Regularization::none, Regularization::wd, Regularization::l2}) {
    oc.reg.kind = reg;
    oc.reg.weight_decay = 0.1;
    auto dense = make_optimizer<double>(oc, spec, p), low = make_optimizer<double>(oc, spec, p);
    const auto stats = kfac_statistics(spec, p, x, CurvatureKind::gauss_newton, 1.0, 1, 0);
    dense->init_factors(stats);
    low->init_factors(stats);
    const auto fw = network_forward(spec, p, x, BnMode::train);
    const auto bw = network_backward(spec, p, fw, gaussian(5, 8, 5));
    std::vector<GradientFactors<double>> gf;
    for (int i = 0; i < int(spec.layers.size()); ++i)
      if (spec.layers[i].kind == LayerKind::dense) gf.push_back({i, &bw.d_out[std::size_t(i)], &fw.input_of(spec, i)});
    low->set_gradient_factors(gf);
    auto pd = p, pl = p;
    dense->step(pd, bw.grads, 0.1, 0);
    low->step(pl, bw.grads, 0.1, 0);
    const int used = dynamic_cast<Kfac<double>&>(*low).last_low_rank_blocks();
    // L2 makes the gradient full rank: the dense path must be taken then. The 40→5 output layer
    // is cheaper dense at B = 8, so two of the three blocks go through the factors.
    CHECK(used == (reg == Regularization::l2 ? 0 : 2));
    for (std::size_t t = 0; t < p.values.size(); ++t) {
      const auto c = compare(fmt::format("{} {}", optim::to_string(reg), p.info[t].name), span_of(pl.values[t]),
                             span_of(pd.values[t]), tol::Kind::exact_double);
      if (t == 0) MESSAGE(c.line());
      CHECK(c.pass);
    }
  }
}

TEST_CASE("BN+ReLU fusion in the network: same outputs and gradient bits, only the fused BN's cotangent left out") {
  // The laptop convnet (four BN+ReLU pairs, each ReLU BN's only reader) and a ResNet8 (BN outputs
  // that also feed a residual add: forward fused, backward not).
  for (const NetworkSpec& spec :
       {zoo::small_convnet(Shape{1, 8, 8}, 3, 4, {.norm = Norm::batchnorm}),
        zoo::resnet(8, 1, Shape{2, 6, 6}, 3, {.norm = Norm::batchnorm, .width_mult = 0.25})}) {
    INFO(spec.model);
    const auto p = init_params<float>(spec, 5, Init::glorot_uniform);
    const Mat<float> x = gaussian(spec.input.size(), 6, 7).cast<float>();
    const Mat<float> w = gaussian(spec.classes, 6, 8).cast<float>();
    const auto fw = network_forward(spec, p, x, BnMode::train);
    int fused_forward = 0, fused_backward = 0;
    for (int i = 0; i < int(spec.layers.size()); ++i) {
      if (!relu_fused_into_bn(spec, i)) continue;
      ++fused_forward;
      Mat<float> r;
      relu_fprop(fw.out[std::size_t(i - 1)], r);
      CHECK(fw.out[std::size_t(i)] == r);
    }
    const auto every = network_backward(spec, p, fw, w, InputGrad::skip, Cotangents::every_layer);
    const auto needed = network_backward(spec, p, fw, w, InputGrad::skip, Cotangents::needed);
    for (std::size_t t = 0; t < p.values.size(); ++t) CHECK(needed.grads.values[t] == every.grads.values[t]);
    for (int i = 0; i < int(spec.layers.size()); ++i) {
      const bool fused = relu_backward_fused(spec, i + 1);
      fused_backward += fused;
      CHECK(every.d_out[std::size_t(i)].size() > 0);
      CHECK((needed.d_out[std::size_t(i)].size() == 0) == fused);
    }
    MESSAGE(spec.model << ": " << fused_forward << " ReLUs fused forward, " << fused_backward << " backward");
    CHECK(fused_forward > 0);
    if (spec.model == "convnet") CHECK(fused_backward == 4);
  }
}

TEST_CASE("skipped weight gradients: those tensors are left as they were, every other gradient and cotangent the same bits") {
  // A convnet (conv layers inside and first, a dense head) and an MLP; skipping every weight layer
  // (K-FAC's statistics pass), every other one, and none (the control: nothing may survive then).
  for (const NetworkSpec& spec :
       {zoo::small_convnet(Shape{1, 8, 8}, 3, 4, {.norm = Norm::batchnorm}),
        zoo::mlp(Shape{12, 1, 1}, 4, {.depth = 2, .width = 9, .bias = Bias::on})}) {
    const auto p = init_params<double>(spec, 21, Init::glorot_uniform);
    const Mat<double> x = gaussian(int(spec.input.size()), 5, 22);
    const Mat<double> w = gaussian(spec.classes, 5, 23);
    const auto fw = network_forward(spec, p, x, BnMode::train);
    const auto full = network_backward(spec, p, fw, w, InputGrad::skip, Cotangents::needed);
    std::vector<int> weight_layers;
    for (int i = 0; i < int(spec.layers.size()); ++i)
      if (spec.layers[i].has_weights()) weight_layers.push_back(i);
    SkippedWeightGrads every_other;
    every_other.layer.assign(spec.layers.size(), 0);
    for (std::size_t j = 0; j < weight_layers.size(); j += 2) every_other.layer[std::size_t(weight_layers[j])] = 1;
    const SkippedWeightGrads all = SkippedWeightGrads::all_weights(spec), none{};
    for (const SkippedWeightGrads* skip : {&all, static_cast<const SkippedWeightGrads*>(&every_other), &none}) {
      NetBackward<double> bw;
      bw.grads = p.zeros_like();
      for (auto& g : bw.grads.values) g.setConstant(std::numeric_limits<double>::quiet_NaN());
      network_backward(spec, p, fw, w, InputGrad::skip, bw, Cotangents::needed, skip);
      int untouched = 0, same = 0, trainable = 0;
      for (std::size_t t = 0; t < p.values.size(); ++t) {
        if (!p.info[t].trainable()) continue;
        ++trainable;
        const bool skipped = skip->skipped(p.info[t].layer);
        const bool all_nan = bw.grads.values[t].array().isNaN().all();
        const bool equal = bw.grads.values[t] == full.grads.values[t];
        untouched += skipped && all_nan;
        same += !skipped && equal;
        CHECK_MESSAGE((skipped ? all_nan : equal), p.info[t].name);
      }
      int cotangents = 0;
      for (std::size_t i = 0; i < spec.layers.size(); ++i) {
        CHECK(bw.d_out[i] == full.d_out[i]);
        cotangents += bw.d_out[i].size() > 0;
      }
      MESSAGE(fmt::format("{}: {} of {} weight layers skipped: {} tensors left as they were, {} the same bits as "
                          "the full pass, of {}; {} cotangents the same bits",
                          spec.model, std::count(skip->layer.begin(), skip->layer.end(), 1), weight_layers.size(),
                          untouched, same, trainable, cotangents));
      CHECK(untouched + same == trainable);
      if (skip == &none) CHECK(untouched == 0);
    }
  }
}

TEST_CASE("first_nonfinite_gradient names the tensor a full check would, reading a skipped layer's factors") {
  const auto spec = zoo::mlp(Shape{6, 1, 1}, 3, {.depth = 2, .width = 5, .bias = Bias::on});
  const auto p = init_params<double>(spec, 31, Init::glorot_uniform);
  const Mat<double> x = gaussian(6, 4, 32);
  const auto fw = network_forward(spec, p, x, BnMode::train);
  const auto full = network_backward(spec, p, fw, gaussian(3, 4, 33), InputGrad::skip, Cotangents::needed);
  const SkippedWeightGrads skip = SkippedWeightGrads::all_weights(spec);
  CHECK(first_nonfinite_gradient(spec, p, fw, full) == -1);
  CHECK(first_nonfinite_gradient(spec, p, fw, full, &skip) == -1);
  // An infinity in a layer's cotangent: its gradients are non-finite, and the factor check names
  // the same first tensor as the check of the formed gradients (recomputed from the bad cotangent).
  for (int layer = 0; layer < int(spec.layers.size()); ++layer) {
    if (!spec.layers[layer].has_weights()) continue;
    auto bad = full;
    bad.d_out[std::size_t(layer)](1, 2) = std::numeric_limits<double>::infinity();
    const LayerSlots& s = p.slots[std::size_t(layer)];
    bad.grads.values[std::size_t(s.weight)] = bad.d_out[std::size_t(layer)] * fw.input_of(spec, layer).transpose();
    bad.grads.values[std::size_t(s.bias)] = bad.d_out[std::size_t(layer)].rowwise().sum();
    const int formed = first_nonfinite_gradient(spec, p, fw, bad);
    const int factored = first_nonfinite_gradient(spec, p, fw, bad, &skip);
    MESSAGE(spec.layers[layer].name << ": formed gradients name " << formed << ", factors name " << factored);
    CHECK(formed == s.weight);
    CHECK(factored == formed);
    // An infinity in the layer's input instead (a hidden layer's: the batch itself has no slot).
    const int src = spec.layers[layer].inputs[0];
    if (src < 0) continue;
    auto fw_bad = fw;
    fw_bad.out[std::size_t(src)](2, 1) = std::numeric_limits<double>::infinity();
    auto bad_in = full;
    bad_in.grads.values[std::size_t(s.weight)] = full.d_out[std::size_t(layer)] * fw_bad.input_of(spec, layer).transpose();
    const int formed_in = first_nonfinite_gradient(spec, p, fw_bad, bad_in);
    const int factored_in = first_nonfinite_gradient(spec, p, fw_bad, full, &skip);
    MESSAGE(spec.layers[layer].name << " input: formed gradients name " << formed_in << ", factors name " << factored_in);
    CHECK(formed_in == s.weight);
    CHECK(factored_in == formed_in);
  }
}

// K-FAC's host-side decisions on the CUDA backend (cuda/kfac_policy.hpp) against the reference:
// blocks, schedule, π-split, the damping-raise loop (emulated with the same positive-definiteness
// tests as CudaKfac), damping_frac, and the checkpoint layout of the K-FAC state, byte for byte
// against ReferenceBackend<float>::state().
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "common/errors.hpp"
#include "common/network_spec.hpp"
#include "common/philox.hpp"
#include "cuda/kfac_policy.hpp"
#include "cuda/state_layout.hpp"
#include "reference/backend.hpp"
#include "reference/net/metrics.hpp"
#include "reference/optim/damped_inverse.hpp"
#include "reference/optim/kfac.hpp"

using namespace wdlab;

namespace {

NetworkSpec kfac_net() {
  SpecBuilder b("kfacnet", Shape{2, 5, 5}, 3);
  b.conv("features.0", 4, 3, 1, 1, Bias::on);
  b.batchnorm("features.1");
  b.relu();
  b.conv("features.3", 3, 3, 2, 0, Bias::off);
  b.flatten();
  b.dense("classifier", 3, Bias::on);
  return b.finish();
}

ref::Mat<float> spd(int n, std::uint64_t stream, float shift) {
  ref::Mat<float> r(n, n);
  for (int i = 0; i < r.size(); ++i) r.data()[i] = float(rng::normal(5, rng::Purpose::theory, stream, std::uint64_t(i)));
  return r * r.transpose() / float(n) + shift * ref::Mat<float>::Identity(n, n);
}

/// CudaKfac::damped_inverse's loop on the host: the same decisions (cholesky_pivots_ok /
/// clipped_inverse_eigenvalues, raised_damping), Eigen for the factorizations.
struct Emulated {
  ref::Mat<float> inverse;
  double used = 0;
  int raises = 0;
  bool ok = false;
};
Emulated emulate(const ref::Mat<float>& F, double d, optim::InverseMethod method, int max_raises) {
  Emulated e;
  e.used = d;
  const double floor = optim::damping_floor<float>(double(F.template cast<double>().trace()), int(F.rows()));
  for (;;) {
    const float df = float(e.used);
    if (method == optim::InverseMethod::cholesky) {
      ref::Mat<float> M = F;
      M.diagonal().array() += df;
      Eigen::LLT<ref::Mat<float>> llt(M);
      if (llt.info() == Eigen::Success) {
        const auto piv = llt.matrixLLT().diagonal().array().square();
        if (cuda::cholesky_pivots_ok(piv.minCoeff(), piv.maxCoeff())) {
          e.inverse = llt.solve(ref::Mat<float>::Identity(F.rows(), F.cols()));
          e.ok = true;
          return e;
        }
      }
    } else {
      Eigen::SelfAdjointEigenSolver<ref::Mat<float>> es(F);
      const Eigen::VectorXf mu = es.eigenvalues();
      const auto inv = cuda::clipped_inverse_eigenvalues(std::span<const float>(mu.data(), std::size_t(mu.size())), df);
      if (inv) {
        const Eigen::VectorXf s = Eigen::Map<const Eigen::VectorXf>(inv->data(), mu.size());
        e.inverse = (es.eigenvectors() * s.asDiagonal()) * es.eigenvectors().transpose();
        e.ok = true;
        return e;
      }
    }
    if (e.raises == max_raises) return e;
    e.used = optim::raised_damping(e.used, floor);
    ++e.raises;
  }
}

}  // namespace

TEST_CASE("cuda kfac blocks: layers, tensors, dimensions and locations as the reference Kfac") {
  const NetworkSpec spec = kfac_net();
  const auto p = ref::init_params<float>(spec, 1, ref::Init::glorot_uniform);
  ref::Kfac<float> opt(optim::KfacConfig{}, optim::RegConfig{}, spec, p, ref::CurvatureKind::fisher);
  const auto blocks = cuda::kfac_blocks(spec);
  REQUIRE(int(blocks.size()) == opt.num_blocks());
  for (int b = 0; b < opt.num_blocks(); ++b) {
    const auto v = opt.block(b);
    const auto& c = blocks[std::size_t(b)];
    CHECK(c.layer == v.layer);
    CHECK(c.locations == v.locations);
    CHECK(c.a_dim() == v.A.rows());
    CHECK(c.out == v.S.rows());
    CHECK(c.w == p.slots[std::size_t(v.layer)].weight);
    CHECK(c.b == p.slots[std::size_t(v.layer)].bias);
  }
  CHECK(blocks[1].b == -1);  // features.3 has no bias: A without the homogeneous row
  CHECK(blocks[1].a_dim() == 4 * 9);
}

TEST_CASE("cuda kfac schedule: factors after (k+1) mod T_cov = 0, inverses at k mod T_inv = 0 or none yet") {
  const NetworkSpec spec = kfac_net();
  const auto p = ref::init_params<float>(spec, 1, ref::Init::glorot_uniform);
  for (const int t_cov : {1, 3, 10}) {
    optim::KfacConfig rc;
    rc.t_cov = t_cov;
    ref::Kfac<float> opt(rc, optim::RegConfig{}, spec, p, ref::CurvatureKind::fisher);
    optim::KfacConfig s;
    s.t_cov = t_cov;
    for (std::int64_t k = 0; k < 25; ++k) CHECK(optim::kfac_wants_factors(s, k) == opt.wants_factors(k));
  }
  optim::KfacConfig s;
  s.t_inv = 4;
  CHECK(optim::kfac_inverses_due(s, 0, optim::InversesReady::yes));
  CHECK_FALSE(optim::kfac_inverses_due(s, 3, optim::InversesReady::yes));
  CHECK(optim::kfac_inverses_due(s, 3, optim::InversesReady::no));  // e.g. right after a data-pass init
  CHECK(optim::kfac_inverses_due(s, 8, optim::InversesReady::yes));
}

TEST_CASE("cuda kfac damped inverse: the retry decisions give the reference's damping, raises and inverse") {
  struct Case {
    const char* what;
    ref::Mat<float> F;
    double d;
  };
  ref::Mat<float> singular = spd(6, 20, 0.0f);
  singular.row(5).setZero();
  singular.col(5).setZero();  // a zero eigenvalue: d = 0 must be raised once, to the floor
  ref::Mat<float> indefinite = spd(5, 21, 0.1f);
  indefinite(2, 2) = -3.0f;  // needs d ≳ 3: several ×10 raises
  const std::vector<Case> cases{{"positive definite", spd(6, 22, 0.5f), 1e-3},
                                {"singular, d = 0", singular, 0.0},
                                {"indefinite", indefinite, 1e-4}};
  for (const auto method : {optim::InverseMethod::cholesky, optim::InverseMethod::eig}) {
    const auto rm = method == optim::InverseMethod::cholesky ? optim::InverseMethod::cholesky : optim::InverseMethod::eig;
    for (const Case& c : cases) {
      const std::string what = c.what;
      CAPTURE(what);
      const auto r = ref::damped_inverse(c.F, c.d, rm, 12);
      const Emulated e = emulate(c.F, c.d, method, 12);
      REQUIRE(e.ok);
      // The floor √ε·tr F/n: the device sums the trace in double, Eigen's float trace() in
      // float, so a raised damping agrees to float rounding, not bit for bit.
      CHECK(e.used == doctest::Approx(r.used).epsilon(1e-6));
      CHECK(e.raises == r.raises);
      CHECK((e.inverse - r.inverse).norm() <= 1e-5 * r.inverse.norm());
      MESSAGE(c.what << ": damping " << r.used << " after " << r.raises << " raises");
    }
  }
  // Controls: without raises the indefinite factor fails; the floor matters for a zero d.
  CHECK_FALSE(emulate(indefinite, 1e-4, optim::InverseMethod::cholesky, 0).ok);
  CHECK(optim::raised_damping(0.0, 1e-4) == 1e-4);
  CHECK(optim::raised_damping(1e-3, 1e-4) == 1e-2);
  CHECK(optim::damping_floor<float>(0.0, 3) == doctest::Approx(std::sqrt(double(std::numeric_limits<float>::epsilon()))));
}

TEST_CASE("damping_frac from the eigenvalues (the CUDA side's input) equals the reference's damping_fraction of the factors") {
  const ref::Mat<float> A = spd(6, 30, 0.0f), S = spd(3, 31, 0.01f);
  using Solver = Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd>;
  const Eigen::VectorXd a = Solver(A.cast<double>(), Eigen::EigenvaluesOnly).eigenvalues();
  const Eigen::VectorXd s = Solver(S.cast<double>(), Eigen::EigenvaluesOnly).eigenvalues();
  for (const double lambda : {1e-4, 1e-2, 1.0}) {
    const double r = ref::damping_fraction(A, S, 4, lambda);
    const double c = optim::damping_fraction(std::span<const double>(a.data(), std::size_t(a.size())),
                                            std::span<const double>(s.data(), std::size_t(s.size())), 4, lambda);
    CHECK(c == r);
  }
  CHECK(optim::damping_fraction(std::span<const double>(a.data(), 6), std::span<const double>(s.data(), 3), 1, 1.0) !=
        ref::damping_fraction(A, S, 4, 1.0));  // control: T matters
}

TEST_CASE("K-FAC state tensors equal the reference's, byte for byte, and read back") {
  const NetworkSpec spec = kfac_net();
  for (const auto kind : {optim::OptimizerKind::kfac_f, optim::OptimizerKind::kfac_g}) {
    optim::OptimConfig cfg;
    cfg.kind = kind;
    cfg.kfac.t_cov = 1;
    cfg.kfac.t_inv = 1;
    ref::ReferenceBackend<float> be(spec, ref::init_params<float>(spec, 5, ref::Init::glorot_uniform), cfg, 5);
    const int n = 4;
    std::vector<float> images(std::size_t(spec.input.size() * n));
    for (std::size_t i = 0; i < images.size(); ++i) images[i] = float(int(i % 11) - 5) / 4.0f;
    const std::vector<std::int32_t> labels{0, 1, 2, 1};
    for (int k = 0; k < 2; ++k) be.train_step(train::HostBatch{images, labels, n}, 0.1, k);
    const io::SafetensorsFile f = be.state();
    const auto blocks = cuda::kfac_blocks(spec);
    const auto& opt = dynamic_cast<const ref::Kfac<float>&>(be.optimizer());
    int checked = 0;
    io::SafetensorsFile ours;  // what CudaKfac::write_state produces from the same numbers
    for (int b = 0; b < opt.num_blocks(); ++b) {
      const auto v = opt.block(b);
      const auto& blk = blocks[std::size_t(b)];
      const std::pair<const char*, const ref::Mat<float>*> mats[] = {{"A", &v.A}, {"S", &v.S}, {"A_inv", &v.A_inv}, {"S_inv", &v.S_inv}};
      for (const auto& [what, m] : mats) {
        const std::vector<float> device(m->data(), m->data() + m->size());  // column-major, as cuBLAS keeps it
        const std::string name = optim::kfac_state_name(what, blk.name);
        ours.tensors[name] = cuda::kfac_matrix_tensor(int(m->rows()), device);
        CHECK_MESSAGE(ours.tensors[name].shape == f.at(name).shape, name);
        CHECK_MESSAGE(ours.tensors[name].data == f.at(name).data, name);
        CHECK(cuda::kfac_matrix_values(int(m->rows()), f.at(name), name) == device);
        ++checked;
      }
      const optim::SplitDamping d{v.damping.lambda_eff, v.damping.pi, v.damping.a, v.damping.s};
      const std::string dn = optim::kfac_state_name("damping", blk.name);
      CHECK(cuda::damping_state_tensor(d).shape == f.at(dn).shape);
      CHECK(cuda::damping_state_tensor(d).data == f.at(dn).data);
      CHECK(float(cuda::damping_state_values(f.at(dn), dn).pi) == float(v.damping.pi));
      ++checked;
    }
    for (const auto& [name, m] : opt.state()) {
      if (name.rfind("optim.momentum.", 0) != 0) continue;
      const int i = be.params().find(name.substr(std::string("optim.momentum.").size()));
      REQUIRE(i >= 0);
      const ParamInfo& info = be.params().info[std::size_t(i)];
      const auto pytorch = ref::to_pytorch_order(info, m);
      CHECK_MESSAGE(cuda::optimizer_state_tensor(info, pytorch).data == f.at(name).data, name);
      ++checked;
    }
    for (const char* flag : {"optim.kfac.initialized", "optim.kfac.inverses_ready"}) {
      CHECK(cuda::scalar_state_tensor(f.at(flag).to_f32()[0]).data == f.at(flag).data);
      ++checked;
    }
    CHECK(cuda::flag_state_value(f.at("optim.kfac.inverses_ready"), "ready"));
    MESSAGE(optim::to_string(kind) << ": " << checked << " state tensors identical");
    int trainable = 0;
    for (const ParamInfo& info : spec.params()) trainable += info.trainable() ? 1 : 0;
    CHECK(checked == 5 * opt.num_blocks() + trainable + 2);
    // Controls: a wrong shape or a flag that is not 0/1 is refused.
    CHECK_THROWS_AS(cuda::kfac_matrix_values(3, f.at(optim::kfac_state_name("S", blocks[0].name)), "S"), DataError);
    CHECK_THROWS_AS(cuda::flag_state_value(cuda::scalar_state_tensor(0.5f), "flag"), DataError);
    CHECK_THROWS_AS(cuda::damping_state_values(io::Tensor::from_f32({1, 4}, std::vector<float>{1, 2, 3, 4}), "d"), DataError);
    CHECK_THROWS_AS(cuda::damping_state_values(io::Tensor::from_f32({4, 1}, std::vector<float>{1, 2, 3, 4}), "d"), DataError);
    // Row-major on file, column-major on the device: a non-symmetric matrix shows the transpose.
    const std::vector<float> device{1, 2, 3, 4};  // column-major [[1, 3], [2, 4]]
    CHECK(cuda::kfac_matrix_tensor(2, device).to_f32() == std::vector<float>{1, 3, 2, 4});
    CHECK(cuda::kfac_matrix_values(2, cuda::kfac_matrix_tensor(2, device), "m") == device);
  }
}

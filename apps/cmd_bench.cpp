// `wdlab bench`: step times of the optimizers on one model and batch, as ratios to SGD, and the
// step's GEMM rate against Eigen's own GEMM rate measured in the same run (shared, noisy
// machines: medians and ratios, never absolute targets in tests).
#include <algorithm>
#include <chrono>
#include <iostream>
#include <numeric>
#include <sstream>

#include <boost/program_options.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "apps/command.hpp"
#include "apps/experiment_config.hpp"
#include "apps/run_setup.hpp"
#include "common/errors.hpp"
#include "common/model_zoo.hpp"
#include "common/philox.hpp"
#include "reference/backend.hpp"

namespace po = boost::program_options;

namespace wdlab::app {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

/// FLOPs of the dense layers' three GEMMs per step (forward, dW, dx except the first layer).
double mlp_step_flops(const NetworkSpec& spec, int batch) {
  double f = 0;
  bool first = true;
  for (const auto& l : spec.layers) {
    if (l.kind != LayerKind::dense) continue;
    const double mnk = 2.0 * l.out.C * l.in.size() * batch;
    f += mnk * (first ? 2 : 3);
    first = false;
  }
  return f;
}

/// Time of the step's GEMMs alone, with Eigen, in the backend's precision.
template <class T>
double gemm_only_seconds(const NetworkSpec& spec, int batch, int reps) {
  std::vector<double> times;
  std::vector<ref::Mat<T>> W, X, Y, dY, dW, dX;
  for (const auto& l : spec.layers) {
    if (l.kind != LayerKind::dense) continue;
    W.push_back(ref::Mat<T>::Random(l.out.C, l.in.size()));
    X.push_back(ref::Mat<T>::Random(l.in.size(), batch));
    Y.push_back(ref::Mat<T>(l.out.C, batch));
    dY.push_back(ref::Mat<T>::Random(l.out.C, batch));
    dW.push_back(ref::Mat<T>(l.out.C, l.in.size()));
    dX.push_back(ref::Mat<T>(l.in.size(), batch));
  }
  for (int r = 0; r < reps; ++r) {
    const auto t = Clock::now();
    for (std::size_t i = 0; i < W.size(); ++i) {
      Y[i].noalias() = W[i] * X[i];
      dW[i].noalias() = dY[i] * X[i].transpose();
      if (i > 0) dX[i].noalias() = W[i].transpose() * dY[i];
    }
    times.push_back(seconds_since(t));
  }
  return median(times);
}

template <class T>
double eigen_gemm_gflops(int n, int reps) {
  const ref::Mat<T> A = ref::Mat<T>::Random(n, n), B = ref::Mat<T>::Random(n, n);
  ref::Mat<T> C(n, n);
  std::vector<double> times;
  for (int r = 0; r < reps; ++r) {
    const auto t = Clock::now();
    C.noalias() = A * B;
    times.push_back(seconds_since(t));
  }
  return 2.0 * n * n * double(n) / median(times) / 1e9;
}

struct Row {
  std::string precision, optimizer;
  double median_s = 0, mean_s = 0, ratio = 0, gflops = 0;
};

template <class T>
std::vector<Row> bench_precision(const NetworkSpec& spec, int batch, int steps, int warmup, double eigen_rate,
                                 double gemm_s, nlohmann::ordered_json& out) {
  const std::string prec = std::is_same_v<T, double> ? "double" : "float";
  // A fixed random batch: the step's cost does not depend on the data.
  std::vector<float> images(std::size_t(spec.input.size()) * batch);
  std::vector<std::int32_t> labels(static_cast<std::size_t>(batch));
  for (std::size_t i = 0; i < images.size(); ++i) images[i] = float(rng::normal(1, rng::Purpose::synthetic, 0, i));
  for (int n = 0; n < batch; ++n) labels[n] = std::int32_t(rng::below(1, rng::Purpose::synthetic, 1, n, std::uint32_t(spec.classes)));
  const train::HostBatch b{images, labels, batch};
  const double flops = mlp_step_flops(spec, batch);
  std::vector<Row> rows;
  for (auto kind : {ref::OptimizerKind::sgd, ref::OptimizerKind::adam, ref::OptimizerKind::kfac_f, ref::OptimizerKind::kfac_g}) {
    ref::OptimConfig oc;
    oc.kind = kind;
    ref::ReferenceBackend<T> be(spec, ref::init_params<T>(spec, 1, ref::Init::glorot_uniform), oc, 1);
    std::vector<double> t;
    for (int k = 0; k < warmup + steps; ++k) {
      const auto t0 = Clock::now();
      be.train_step(b, 1e-3, k);
      if (k >= warmup) t.push_back(seconds_since(t0));
    }
    Row r;
    r.precision = prec;
    r.optimizer = ref::to_string(kind);
    r.median_s = median(t);
    r.mean_s = std::accumulate(t.begin(), t.end(), 0.0) / double(t.size());  // amortized
    r.gflops = flops / r.median_s / 1e9;
    rows.push_back(r);
  }
  for (auto& r : rows) r.ratio = r.mean_s / rows[0].mean_s;
  for (const auto& r : rows)
    out["results"].push_back({{"precision", r.precision}, {"optimizer", r.optimizer}, {"median_step_s", r.median_s},
                              {"mean_step_s", r.mean_s}, {"ratio_to_sgd", r.ratio}, {"step_gflops", r.gflops}});
  out["gemm"][prec] = {{"eigen_gemm_gflops", eigen_rate}, {"step_gemms_only_s", gemm_s},
                       {"sgd_step_over_gemms", rows[0].median_s / gemm_s}};
  return rows;
}

}  // namespace

int cmd_bench(const Args& args) {
  std::string backend = "reference", precision = "both", format = "table";
  int batch = 128, steps = 100, warmup = 5, width = 1000, depth = 2;
  po::options_description desc(
      "wdlab bench [--backend reference] [--precision both|float|double] [--batch 128]\n\n"
      "Times one training step of SGD, Adam, K-FAC-F and K-FAC-G (T_cov=10, T_inv=100: the\n"
      "K-FAC mean includes its amortized factor and inverse work) on an MLP 784-W-...-10 with\n"
      "a fixed random batch; reports medians, means, the ratio of each mean to SGD's, the step's\n"
      "GEMM GFLOP/s and, measured in the same run, the time of the step's GEMMs alone and Eigen's\n"
      "GEMM rate on 1024x1024 matrices.\n\noptions");
  desc.add_options()
      ("help,h", "this text")
      ("backend", po::value(&backend)->default_value(backend), "reference (cuda: not in this build yet)")
      ("precision", po::value(&precision)->default_value(precision), "both | float | double")
      ("batch", po::value(&batch)->default_value(batch), "batch size")
      ("steps", po::value(&steps)->default_value(steps), "timed steps per optimizer (>= 100 covers one T_inv)")
      ("warmup", po::value(&warmup)->default_value(warmup), "untimed steps first")
      ("width", po::value(&width)->default_value(width), "MLP hidden width")
      ("depth", po::value(&depth)->default_value(depth), "MLP hidden layers")
      ("format", po::value(&format)->default_value(format), "table | json");
  if (!parse_options(desc, args, [&] {
    if (backend != "reference")
      throw UsageError("--backend", backend == "cuda" ? "the CUDA backend cannot train in this build yet"
                                                      : fmt::format("expected reference, got '{}'", backend));
    if (precision != "both" && precision != "float" && precision != "double")
      throw UsageError("--precision", fmt::format("expected both, float or double, got '{}'", precision));
    if (format != "table" && format != "json") throw UsageError("--format", "expected table or json");
    if (batch < 2) throw UsageError("--batch", "must be >= 2");
    if (steps < 1) throw UsageError("--steps", "must be >= 1");
    if (warmup < 0) throw UsageError("--warmup", "must be >= 0");
    if (width < 1) throw UsageError("--width", "must be >= 1");
    if (depth < 0) throw UsageError("--depth", "must be >= 0");
  }))
    return 0;
  const NetworkSpec spec = zoo::mlp(Shape{1, 28, 28}, 10, {.depth = depth, .width = width, .bias = Bias::on});
  nlohmann::ordered_json out;
  out["model"] = fmt::format("mlp 784-{}x{}-10", width, depth);
  out["batch"] = batch;
  out["steps"] = steps;
  out["results"] = nlohmann::ordered_json::array();
  std::vector<Row> rows;
  auto run = [&]<class T>(T) {
    const double rate = eigen_gemm_gflops<T>(1024, 5);
    const double gemm_s = gemm_only_seconds<T>(spec, batch, 20);
    auto r = bench_precision<T>(spec, batch, steps, warmup, rate, gemm_s, out);
    rows.insert(rows.end(), r.begin(), r.end());
    if (format == "table")
      fmt::print(stderr, "{}: Eigen GEMM {:.1f} GFLOP/s; the step's GEMMs alone {:.2f} ms\n",
                 std::is_same_v<T, double> ? "double" : "float", rate, gemm_s * 1e3);
  };
  if (precision != "double") run(float{});
  if (precision != "float") run(double{});
  if (format == "json") {
    fmt::print("{}\n", out.dump(2));
    return 0;
  }
  fmt::print("{} batch {}, {} timed steps each\n", std::string(out["model"]), batch, steps);
  fmt::print("{:<9} {:<8} {:>12} {:>12} {:>10} {:>12}\n", "precision", "optim", "median ms", "mean ms", "mean/SGD",
             "step GFLOP/s");
  for (const auto& r : rows)
    fmt::print("{:<9} {:<8} {:>12.2f} {:>12.2f} {:>10.2f} {:>12.1f}\n", r.precision, r.optimizer, r.median_s * 1e3,
               r.mean_s * 1e3, r.ratio, r.gflops);
  for (const auto& [prec, g] : out["gemm"].items())
    fmt::print("{}: SGD step / its GEMMs alone = {:.2f} (target <= 1.5); Eigen GEMM {:.1f} GFLOP/s\n", prec,
               double(g["sgd_step_over_gemms"]), double(g["eigen_gemm_gflops"]));
  return 0;
}

}  // namespace wdlab::app

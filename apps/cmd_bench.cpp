// `wdlab bench`: step times of the optimizers on one model and batch, as ratios to SGD, and the
// step's GEMM rate against Eigen's own GEMM rate measured in the same run (shared, noisy
// machines: medians and ratios, never absolute targets in tests). With --model (VGG16,
// ResNet32x4, CIFAR shapes), --batches or --backend cuda: images/s, step times and the fraction
// of FP32 peak per model, batch and optimizer, the backend a parameter (apps/bench_backend.hpp).
#include <algorithm>
#include <chrono>
#include <iostream>
#include <numeric>
#include <sstream>

#include <boost/program_options.hpp>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "apps/bench_backend.hpp"
#include "apps/command.hpp"
#include "apps/crosscheck/cases.hpp"
#include "apps/experiment_config.hpp"
#include "apps/run_setup.hpp"
#include "common/errors.hpp"
#include "common/model_zoo.hpp"
#include "common/philox.hpp"
#include "reference/backend.hpp"
#include "reference/ops/gemm.hpp"

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
      ref::gemm(Y[i], W[i], X[i]);  // as the engine does them (reference/ops/gemm.hpp)
      ref::gemm(dW[i], dY[i], X[i].transpose());
      if (i > 0) ref::gemm(dX[i], W[i].transpose(), dY[i]);
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
  // Untimed: the first calls start the engine's threads and their BLAS buffers (measured: the
  // first three 1024³ products ran at half the rate of the later ones).
  for (int r = 0; r < 3; ++r) ref::gemm(C, A, B);
  for (int r = 0; r < reps; ++r) {
    const auto t = Clock::now();
    ref::gemm(C, A, B);  // the engine's GEMM: pieces on its threads, one BLAS call each
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
  for (auto kind : optim::all_optimizer_kinds) {
    optim::OptimConfig oc;
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
    r.optimizer = to_string(kind);
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

/// Model FLOPs of one training step: per dense/conv layer 2·MACs for the forward pass, the
/// weight gradient and (except for the first layer, whose input needs no gradient, in wdlab and
/// PyTorch alike) the input gradient. BN, ReLU, pooling and the optimizer are not counted.
double model_step_flops(const NetworkSpec& spec, int batch) {
  double f = 0;
  for (const auto& l : spec.layers) {
    double macs = 0;
    if (l.kind == LayerKind::dense) macs = double(l.out.C) * l.in.size() * batch;
    if (l.kind == LayerKind::conv2d) macs = double(batch) * l.out.size() * l.in.C * l.kernel * l.kernel;
    if (macs == 0) continue;
    f += 2 * macs * (l.inputs[0] == -1 ? 2 : 3);
  }
  return f;
}

struct NetBenchOptions {
  std::string backend, model, precision, format;
  std::vector<int> batches;
  std::vector<std::string> optimizers;
  int steps = 20, warmup = 5;
  double width_mult = 1, peak_tflops = 67;
  MathMode math = MathMode::fp32;
  bool params_only = false;
};

/// images/s, step times and the fraction of FP32 peak for every batch and optimizer.
int bench_networks(const NetBenchOptions& o) {
  if (o.params_only) {  // what scripts/bench_pytorch.py compares its models with
    const NetworkSpec spec = xcheck::network_spec(o.model, o.width_mult);
    nlohmann::ordered_json j{{"model", o.model}, {"params", spec.num_trainable()}};
    if (o.format != "table") fmt::print("{}\n", j.dump(o.format == "json" ? 2 : -1));
    else fmt::print("{}: {} trainable parameters\n", o.model, spec.num_trainable());
    return 0;
  }
  if (o.backend == "cuda") {
    try {
      check_cuda_bench_backend();
    } catch (const BackendUnavailable& e) {
      fmt::print(stderr, "wdlab bench: {}\n", e.what());  // one line, exit 2, before any work
      return int(ExitCode::usage);
    }
  }
  const NetworkSpec spec = xcheck::network_spec(o.model, o.width_mult);
  nlohmann::ordered_json out;
  out["model"] = o.model;
  out["backend"] = o.backend;
  out["math_mode"] = to_string(o.math);
  out["params"] = spec.num_trainable();
  out["steps"] = o.steps;
  out["warmup"] = o.warmup;
  out["peak_tflops"] = o.peak_tflops;
  out["results"] = nlohmann::ordered_json::array();
  // jsonl: the header, then each row on its own line as soon as it is measured (flushed), so a
  // call stopped by a time limit keeps every row it finished (scripts/gpu-check.sh).
  const bool stream = o.format == "jsonl";
  if (stream) {
    nlohmann::ordered_json header = out;
    header.erase("results");
    fmt::print("{}\n", header.dump());
    std::fflush(stdout);
  }
  const auto add_row = [&](nlohmann::ordered_json row) {
    if (stream) {
      fmt::print("{}\n", row.dump());
      std::fflush(stdout);
    }
    out["results"].push_back(std::move(row));
  };
  std::vector<std::string> precisions;
  if (o.backend == "cuda") precisions = {"float"};
  else if (o.precision == "both") precisions = {"float", "double"};
  else precisions = {o.precision};
  if (o.format == "table")
    fmt::print("{} ({} trainable parameters), {} backend, math {}, median of {} steps after {} warm-up\n{:<7} {:<7} {:>6} "
               "{:>11} {:>11} {:>10} {:>9} {:>9} {:>8}\n",
               o.model, spec.num_trainable(), o.backend, to_string(o.math), o.steps, o.warmup, "prec", "optim", "batch",
               "median ms", "mean ms", "images/s", "mean/SGD", "TFLOP/s", "of peak");
  for (const auto& prec : precisions)
    for (int batch : o.batches) {
      std::vector<float> images(std::size_t(spec.input.size()) * batch);
      std::vector<std::int32_t> labels(static_cast<std::size_t>(batch));
      for (std::size_t i = 0; i < images.size(); ++i) images[i] = float(rng::normal(1, rng::Purpose::synthetic, 0, i));
      for (int n = 0; n < batch; ++n)
        labels[n] = std::int32_t(rng::below(1, rng::Purpose::synthetic, 1, n, std::uint32_t(spec.classes)));
      const train::HostBatch b{images, labels, batch};
      const double flops = model_step_flops(spec, batch);
      double sgd_mean = 0;
      for (const auto& name : o.optimizers) {
        optim::OptimConfig oc;
        oc.kind = optim::parse_optimizer_kind("--optimizers", name);
        BenchBackend be;
        try {
          be = o.backend == "cuda" ? make_cuda_bench_backend(spec, oc, o.math, 1)
                                   : make_reference_bench_backend(
                                         spec, oc, prec == "double" ? BenchPrecision::float64 : BenchPrecision::float32, 1);
        } catch (const UsageError& e) {  // the backend refuses this optimizer: a row that says so
          add_row({{"precision", prec}, {"optimizer", name}, {"batch", batch}, {"error", e.what()}});
          if (o.format == "table") fmt::print("{:<7} {:<7} {:>6} not run: {}\n", prec, name, batch, e.what());
          continue;
        }
        std::vector<double> t;
        for (int k = 0; k < o.warmup + o.steps; ++k) {
          be.timer->start();
          const auto st = be.backend->train_step(b, 1e-3, k);
          const double s = be.timer->stop();
          if (!st.finite) throw NumericError(fmt::format("bench: non-finite loss at step {} ({})", k, name));
          if (k >= o.warmup) t.push_back(s);
        }
        const double med = median(t), mean = std::accumulate(t.begin(), t.end(), 0.0) / double(t.size());
        if (oc.kind == optim::OptimizerKind::sgd) sgd_mean = mean;
        nlohmann::ordered_json row;
        row["precision"] = be.precision;
        row["optimizer"] = name;
        row["batch"] = batch;
        row["median_step_s"] = med;
        row["mean_step_s"] = mean;  // includes K-FAC's amortized statistics and inverses
        row["images_per_s"] = batch / med;
        row["ratio_mean_to_sgd"] = sgd_mean > 0 ? nlohmann::ordered_json(mean / sgd_mean) : nlohmann::ordered_json();
        row["model_gflop_per_step"] = flops / 1e9;
        row["tflops"] = flops / med / 1e12;
        row["fraction_fp32_peak"] = flops / med / 1e12 / o.peak_tflops;
        row["timer"] = be.timer->name();
        add_row(row);
        if (o.format == "table")
          fmt::print("{:<7} {:<7} {:>6} {:>11.3f} {:>11.3f} {:>10.1f} {:>9} {:>9.3f} {:>7.1f}%\n", be.precision, name,
                     batch, med * 1e3, mean * 1e3, batch / med,
                     sgd_mean > 0 ? fmt::format("{:.2f}", mean / sgd_mean) : std::string("-"), flops / med / 1e12,
                     100 * flops / med / 1e12 / o.peak_tflops);
      }
    }
  if (o.format == "json") fmt::print("{}\n", out.dump(2));
  return 0;
}

}  // namespace

int cmd_bench(const Args& args) {
  std::string backend = "reference", precision = "both", format = "table";
  int batch = 128, steps = 100, warmup = 5, width = 1000, depth = 2;
  std::string model = "mlp", batches, optimizers = "sgd,adam,kfac-f,kfac-g", tf32 = "off";
  double width_mult = 1, peak_tflops = 67;
  bool params_only = false;
  po::options_description desc(
      "wdlab bench [--backend reference|cuda] [--precision both|float|double] [--batch 128]\n\n"
      "Times one training step of SGD, Adam, K-FAC-F and K-FAC-G (T_cov=10, T_inv=100: the\n"
      "K-FAC mean includes its amortized factor and inverse work) on an MLP 784-W-...-10 with\n"
      "a fixed random batch; reports medians, means, the ratio of each mean to SGD's, the step's\n"
      "GEMM GFLOP/s and, measured in the same run, the time of the step's GEMMs alone and Eigen's\n"
      "GEMM rate on 1024x1024 matrices.\n\n"
      "With --model other than mlp (vgg16, vgg16-bn, resnet32x4, resnet32x4-bn: CIFAR shapes, synthetic\n"
      "data), --batches or --backend cuda: per batch and optimizer the median step time (CUDA events on\n"
      "the cuda backend), images/s, the mean as a ratio to SGD's, the model FLOPs per step (2 per MAC of\n"
      "every conv/dense pass) as TFLOP/s and as a fraction of --peak-tflops. --backend cuda without a\n"
      "usable GPU (or without the backend) exits 2 with one line.\n\noptions");
  desc.add_options()
      ("help,h", "this text")
      ("backend", po::value(&backend)->default_value(backend), "reference | cuda")
      ("precision", po::value(&precision)->default_value(precision), "both | float | double")
      ("batch", po::value(&batch)->default_value(batch), "batch size")
      ("steps", po::value(&steps)->default_value(steps), "timed steps per optimizer (>= 100 covers one T_inv)")
      ("warmup", po::value(&warmup)->default_value(warmup), "untimed steps first")
      ("width", po::value(&width)->default_value(width), "MLP hidden width")
      ("depth", po::value(&depth)->default_value(depth), "MLP hidden layers")
      ("format", po::value(&format)->default_value(format),
       "table | json | jsonl (networks: a header line, then one line per row as it is measured)")
      ("model", po::value(&model)->default_value(model), "mlp | vgg16 | vgg16-bn | resnet32x4 | resnet32x4-bn | mlp-bn | convnet-bn")
      ("batches", po::value(&batches), "batch sizes, e.g. 128,640,2000 (default: --batch)")
      ("optimizers", po::value(&optimizers)->default_value(optimizers), "which optimizers (--model/--batches/cuda runs)")
      ("width-mult", po::value(&width_mult)->default_value(width_mult), "scale the model's widths (CPU smoke runs)")
      ("tf32", po::value(&tf32)->default_value(tf32), "off | on: TF32 math for convolutions and GEMMs (cuda)")
      ("peak-tflops", po::value(&peak_tflops)->default_value(peak_tflops), "FP32 peak for the fraction (H200: ~67)")
      ("params-only", po::bool_switch(&params_only), "print the --model's trainable parameter count and exit");
  if (!parse_options(desc, args, [&] {
    if (backend != "reference" && backend != "cuda")
      throw UsageError("--backend", fmt::format("expected reference or cuda, got '{}'", backend));
    if (tf32 != "off" && tf32 != "on") throw UsageError("--tf32", "expected off or on");
    if (backend == "reference" && tf32 == "on") throw UsageError("--tf32", "TF32 is a cuda math mode");
    if (!(width_mult > 0)) throw UsageError("--width-mult", "must be > 0");
    if (!(peak_tflops > 0)) throw UsageError("--peak-tflops", "must be > 0");
    // One list: begin() and end() of two calls would be iterators into two different vectors.
    const auto models = xcheck::network_names();
    if (std::find(models.begin(), models.end(), model) == models.end())
      throw UsageError("--model", fmt::format("unknown model '{}' (one of: {})", model, fmt::join(models, ", ")));
    if (precision != "both" && precision != "float" && precision != "double")
      throw UsageError("--precision", fmt::format("expected both, float or double, got '{}'", precision));
    if (format != "table" && format != "json" && format != "jsonl")
      throw UsageError("--format", "expected table, json or jsonl");
    if (batch < 2) throw UsageError("--batch", "must be >= 2");
    if (steps < 1) throw UsageError("--steps", "must be >= 1");
    if (warmup < 0) throw UsageError("--warmup", "must be >= 0");
    if (width < 1) throw UsageError("--width", "must be >= 1");
    if (depth < 0) throw UsageError("--depth", "must be >= 0");
  }))
    return 0;
  if (backend == "cuda" || model != "mlp" || !batches.empty() || params_only) {
    NetBenchOptions o;
    o.backend = backend;
    o.model = model;
    o.precision = precision;
    o.format = format;
    for (long long v : parse_int_list("--batches", batches.empty() ? std::to_string(batch) : batches)) {
      if (v < 2) throw UsageError("--batches", "every batch must be >= 2");
      o.batches.push_back(int(v));
    }
    std::string cur;
    for (char ch : optimizers + ",") {
      if (ch != ',') {
        cur += ch;
        continue;
      }
      if (cur.empty()) continue;
      optim::parse_optimizer_kind("--optimizers", cur);  // UsageError naming the known kinds
      o.optimizers.push_back(cur);
      cur.clear();
    }
    o.steps = steps;
    o.warmup = warmup;
    o.width_mult = width_mult;
    o.peak_tflops = peak_tflops;
    o.math = tf32 == "on" ? MathMode::tf32 : MathMode::fp32;
    o.params_only = params_only;
    return bench_networks(o);
  }
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
  if (format == "json" || format == "jsonl") {  // the MLP bench: one object (one line for jsonl)
    fmt::print("{}\n", out.dump(format == "json" ? 2 : -1));
    return 0;
  }
  fmt::print("{} batch {}, {} timed steps each\n", std::string(out["model"]), batch, steps);
  fmt::print("{:<9} {:<8} {:>12} {:>12} {:>10} {:>12}\n", "precision", "optim", "median ms", "mean ms", "mean/SGD",
             "step GFLOP/s");
  for (const auto& r : rows)
    fmt::print("{:<9} {:<8} {:>12.2f} {:>12.2f} {:>10.2f} {:>12.1f}\n", r.precision, r.optimizer, r.median_s * 1e3,
               r.mean_s * 1e3, r.ratio, r.gflops);
  for (const auto& [prec, g] : out["gemm"].items())
    fmt::print("{}: SGD step / its GEMMs alone = {:.2f} (target <= 1.3); Eigen GEMM {:.1f} GFLOP/s\n", prec,
               double(g["sgd_step_over_gemms"]), double(g["eigen_gemm_gflops"]));
  return 0;
}

}  // namespace wdlab::app

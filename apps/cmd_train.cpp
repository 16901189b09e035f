// `wdlab train`: one experiment into a run directory (apps/run_dir.hpp: config.json, meta.json,
// metrics.jsonl/.csv, checkpoints/, DONE). This file is the command's flow: options, config,
// the run directory's verdict, data, backend, training.
#include <chrono>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <optional>
#include <sstream>

#include <boost/program_options.hpp>
#include <fmt/format.h>

#include "apps/checkpoint_meta.hpp"
#include "apps/command.hpp"
#include "apps/config_fields.hpp"
#include "apps/experiment_config.hpp"
#include "apps/cuda_setup.hpp"
#include "apps/run_dir.hpp"
#include "apps/run_setup.hpp"
#include "common/data/dataset.hpp"
#include "common/cpu_runtime.hpp"
#include "common/errors.hpp"
#include "common/io/json_config.hpp"
#include "common/model_zoo.hpp"
#include "common/train/checkpoint.hpp"
#include "wdlab/build_info.hpp"

namespace po = boost::program_options;
namespace fs = std::filesystem;

namespace wdlab::app {

/// Our JSON for a config file (ours or official, mapped) with --set overrides applied.
nlohmann::json resolve_config_json(const std::string& file, const std::vector<std::string>& sets,
                                   bool print_mapping) {
  nlohmann::json j = file.empty() ? nlohmann::json::object() : io::read_json_file(file);
  if (is_official_config(j)) {
    std::vector<std::string> mapping;
    j = map_official_config(j, mapping).to_json();
    if (print_mapping) {
      fmt::print(stderr, "{}: an official Weight-Decay config; mapped as follows:\n", file);
      for (const auto& m : mapping) fmt::print(stderr, "  {}\n", m);
    }
  }
  for (const auto& s : sets) io::apply_override(j, s);
  return j;
}

int cmd_train(const Args& args) {
  std::string config_file, out_dir;
  std::vector<std::string> sets;
  std::string backend_name, precision_name, metrics_list;
  std::string resume_mode = "auto", on_nonfinite;
  std::vector<std::string> resets;
  bool quiet = false, dry_run = false;
  po::options_description desc(
      "wdlab train [--config FILE] [--set key=value ...] [--out DIR] [--resume auto|never]\n"
      "            [--reset KEY ...] [--on-nonfinite abort|skip]\n\n"
      "Trains one experiment on --backend reference (the CPU engine) or cuda (a GPU). FILE is a\n"
      "wdlab config (configs/) or an official Weight-Decay config (its keys are mapped and the\n"
      "mapping printed). Unknown keys are errors. Without --config the defaults train an MLP on\n"
      "Fashion-MNIST with SGD.\n\n"
      "Config keys (and --set names), what they accept and their defaults:\n" +
      config_keys_help() + "\n" +
      "Metric groups (--metrics / metrics.groups, comma-separated; 'all', 'default', 'none'):\n" +
      train::metric_groups_help() +
      "The probe set of the curvature groups is the first metrics.probe (256) examples of\n"
      "metrics.probe_split (train: the training split, default | test); metrics.curvature_bn is\n"
      "batch (default: BN with the probe batch's statistics, as K-FAC sees it) | eval (running\n"
      "statistics). Runs started before these keys existed keep test and eval on resume.\n"
      "Row 0 (epoch 0) holds the initial state before the first step.\n\noptions");
  desc.add_options()
      ("help,h", "this text")
      ("config,c", po::value(&config_file), "experiment config (JSON)")
      ("set", po::value(&sets)->composing(), "override a key: --set lr=0.05 --set kfac.damping=1e-2")
      ("out,o", po::value(&out_dir), "run directory (default runs/<name>)")
      ("backend", po::value(&backend_name), "reference (default) | cuda (same as --set backend=...)")
      ("precision", po::value(&precision_name), "float (default) | double (same as --set precision=...)")
      ("metrics", po::value(&metrics_list), "metric groups to log per epoch, e.g. norms,elr,gap,jacobian,gn\n"
                                            "(same as --set metrics.groups=...; default norms,elr,gap)")
      ("resume", po::value(&resume_mode)->implicit_value("auto"),
       "auto (default): continue a run in DIR from its newest valid checkpoint, start it when it "
       "has none; never: refuse a DIR that holds a run")
      ("reset", po::value(&resets)->composing(),
       "on resume, accept a changed config key (prefix): --reset epochs --reset lr; 'data' accepts "
       "a changed training set")
      ("on-nonfinite", po::value(&on_nonfinite),
       "abort (default): record the step, keep the last checkpoint, exit 4 | skip: record it, undo "
       "the step, go on (same as --set on_nonfinite=...)")
      ("quiet,q", po::bool_switch(&quiet), "no progress output")
      ("dry-run", po::bool_switch(&dry_run), "print the resolved config and the network, then exit");
  ExperimentConfig cfg;
  nlohmann::json resolved;
  if (!parse_options(desc, args, [&] {
    if (!backend_name.empty()) sets.push_back("backend=" + backend_name);
    if (!precision_name.empty()) sets.push_back("precision=" + precision_name);
    if (!metrics_list.empty()) sets.push_back("metrics.groups=" + metrics_list);
    if (!on_nonfinite.empty()) sets.push_back("on_nonfinite=" + on_nonfinite);
    if (resume_mode != "auto" && resume_mode != "never")
      throw UsageError("--resume", fmt::format("'{}' is not auto or never", resume_mode));
    resolved = resolve_config_json(config_file, sets, !quiet);
    cfg = parse_config(resolved);
  }))
    return 0;
  if (dry_run) {
    // The input shape comes from the data set's name alone; nothing is loaded.
    const bool cifar = cfg.data.dataset.rfind("cifar", 0) == 0;
    const Shape input = cifar ? Shape{3, 32, 32} : Shape{1, 28, 28};
    const NetworkSpec spec = zoo::build(cfg.model, input, cfg.data.dataset == "cifar100" ? 100 : 10);
    fmt::print("{}\n{}", cfg.to_json().dump(2), spec.describe());
    if (cfg.backend == BackendKind::cuda)
      fmt::print("device memory of the cuda backend (resident data not counted: its size is known once loaded):\n{}",
                 device_memory_plan(cfg, spec, 0).describe());
    return 0;
  }
  check_backend_usable(cfg);  // --backend cuda without a GPU: one line, exit 2, no run directory
  // What the run directory already holds decides: start, continue, or refuse (never overwrite).
  const RunDirectory run_dir(out_dir.empty() ? fs::path("runs") / cfg.name : fs::path(out_dir),
                             resume_mode == "never" ? ResumeMode::never : ResumeMode::continue_run, resets);
  const OpenedRun run = run_dir.open(resolved, cfg);
  if (run.complete) {
    fmt::print("{} is already complete\n", run_dir.path().string());
    return 0;
  }
  if (run.from)  // said even with --quiet: which state a run continues from is not progress chatter
    fmt::print(stderr, "resuming from {} (epoch {}, batch {}, iteration {})\n", run.from->path.string(),
               run.from->at.epoch, run.from->at.batch, run.from->at.iteration);
  cfg = run.config;
  // Everything that can fail on bad input (data, network, backend, wn source, identity of the
  // data) fails before the run directory is touched: no partial output.
  data::ChannelStats stats;
  const auto data = load_datasets(cfg.data, cfg.seed, &stats);
  const NetworkSpec spec = build_network(cfg, data.train);
  check_device_memory(cfg, spec, std::int64_t(data.train.size() + data.val.size() + data.test.size()));
  auto backend = make_backend(cfg, spec);
  train::TrainerConfig tc = trainer_config(cfg);
  if (quiet) tc.progress = train::Progress::quiet;
  tc.wn = norm_transfer(cfg, spec);
  const std::string dataset_hash = data::content_hash_hex(data.train);
  run_dir.check_data(run, dataset_hash);
  nlohmann::ordered_json meta;
  meta["wdlab_version"] = build::version;
  meta["build_type"] = build::build_type;
  meta["compiler"] = build::compiler;
  meta["backend"] = backend->describe();
  meta["dataset"] = data.train.describe();
  meta["dataset_hash"] = dataset_hash;
  meta["train_examples"] = data.train.size();
  meta["val_examples"] = data.val.size();
  meta["test_examples"] = data.test.size();
  // Float results of the CPU engine depend on the BLAS kernel set (each set orders its sums its
  // own way), not on the thread count (the engine cuts its work by shape, tests/reference/
  // test_thread_count.cpp): both recorded, the kernel set so a run can be repeated bit for bit.
  const CpuRuntime cpu = cpu_runtime();
  meta["blas"] = cpu.blas;
  meta["blas_kernels"] = cpu.kernels;
  meta["threads"] = cpu.threads;
  std::string argv_line = "wdlab train";
  for (const auto& a : args) argv_line += " " + a;
  meta["input_pipeline"] = input_pipeline_json(cfg, data, stats);
  meta["argv"] = argv_line;
  meta["started"] = std::time(nullptr);
  run_dir.start(run, meta);
  if (!quiet)
    fmt::print(stderr, "{}\n{}\nrun directory: {}\n", backend->describe(), data.train.describe(),
               run_dir.path().string());

  nlohmann::json ckpt_meta;
  ckpt_meta["config"] = run.written.dump();
  ckpt_meta["dataset_hash"] = meta["dataset_hash"];
  ckpt_meta["input_pipeline"] = meta["input_pipeline"];  // README "Use a checkpoint in PyTorch"
  ckpt_meta["network"] = network_json(spec);
  ckpt_meta["blas_kernels"] = cpu.kernels;
  ckpt_meta["threads"] = std::to_string(cpu.threads);
  if (run.from) {
    const auto& m = run.from->file.metadata;
    const auto said = [&](const char* k) { return m.count(k) ? m.at(k) : std::string("?"); };
    if (m.count("blas_kernels") && m.at("blas_kernels") != cpu.kernels)
      fmt::print(stderr, "note: the checkpoint was written on BLAS kernels {}, this process has {}: the continuation "
                 "will not be bit-identical to an uninterrupted run (OPENBLAS_CORETYPE selects a kernel set)\n",
                 said("blas_kernels"), cpu.kernels);
  }
  const auto sum = train::train(*backend, data, tc, run_dir.path(), run.from, ckpt_meta);
  const nlohmann::ordered_json last = run_dir.finish(sum.seconds);
  fmt::print("{}: {} epochs, test accuracy {:.4f}, test loss {:.4f}, {:.1f} s\n", run_dir.path().string(),
             last.value("epoch", 0), last.value("test_acc", 0.0), last.value("test_loss", 0.0), sum.seconds);
  return 0;
}

}  // namespace wdlab::app

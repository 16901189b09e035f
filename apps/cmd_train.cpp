// `wdlab train`: one experiment into a run directory (config.json, meta.json, metrics.jsonl/.csv,
// checkpoints/, DONE).
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
#include "apps/experiment_config.hpp"
#include "apps/cuda_setup.hpp"
#include "apps/run_setup.hpp"
#include "common/data/dataset.hpp"
#include "common/cpu_runtime.hpp"
#include "common/errors.hpp"
#include "common/io/atomic_file.hpp"
#include "common/io/json_config.hpp"
#include "common/model_zoo.hpp"
#include "common/train/checkpoint.hpp"
#include "common/train/metrics_log.hpp"
#include "wdlab/build_info.hpp"

namespace po = boost::program_options;
namespace fs = std::filesystem;

namespace wdlab::app {

namespace {

/// Keys (dotted paths) whose values differ between two resolved configs.
void diff_keys(const nlohmann::json& a, const nlohmann::json& b, const std::string& prefix,
               std::vector<std::string>& out) {
  if (a.is_object() && b.is_object()) {
    for (const auto& [k, v] : a.items())
      diff_keys(v, b.contains(k) ? b[k] : nlohmann::json(), prefix + k + ".", out);
    for (const auto& [k, v] : b.items())
      if (!a.contains(k)) out.push_back(prefix + k);
    return;
  }
  if (a != b) out.push_back(prefix.substr(0, prefix.size() - 1));
}

}  // namespace

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
      "Trains one experiment on the CPU reference backend. FILE is a wdlab config (configs/) or an\n"
      "official Weight-Decay config (its keys are mapped and the mapping printed). Unknown keys\n"
      "are errors. Without --config the defaults train an MLP on Fashion-MNIST with SGD.\n\n"
      "Config keys (and --set names): name, dataset (fashion-mnist|mnist|cifar10|cifar100),\n"
      "data_dir, validation, train_subset, test_subset, augment, model (mlp|convnet|vgg11..19|\n"
      "resnet<6n+2>), arch.{depth,width,activation,bias,batchnorm,bn_affine,width_mult,widen,\n"
      "base_width,init}, optimizer (sgd|adam|kfac-f|kfac-g|lion), lr, momentum, nesterov,\n"
      "regularization (none | l2: beta*theta added to the gradient before preconditioning or\n"
      "moments | wd: theta <- theta - lr*beta*theta after the step), weight_decay, wd_scope\n"
      "(all|conv|fc|list), wd_params, decay_biases, decay_bn, adam.{beta1,beta2,eps}, lion.{beta1,beta2},\n"
      "kfac.{damping,t_cov,t_inv,cov_ema_decay,kl_clip,inverse,factor_init,gn_probe_variance},\n"
      "schedule.{kind,gamma,every_epochs,every_iterations,warmup_iterations}, epochs,\n"
      "batch_size, eval_batch_size, seed, backend (reference|cuda), precision (float|double),\n"
      "math (fp32 | tf32: cuda only, TF32 tensor-core convolutions and GEMMs),\n"
      "checkpoint.{every,keep}, metrics.{groups,probe,jac_probes,probe_distribution,probe_split,\n"
      "curvature_bn},\n"
      "wn.{scope (none|conv|fc|all),norms_from (a run directory)}.\n\n"
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
      ("backend", po::value(&backend_name), "reference (default; same as --set backend=...)")
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
  nlohmann::ordered_json cfg_json = cfg.to_json();
  if (dry_run) {
    // The input shape comes from the data set's name alone; nothing is loaded.
    const bool cifar = cfg.data.dataset.rfind("cifar", 0) == 0;
    const Shape input = cifar ? Shape{3, 32, 32} : Shape{1, 28, 28};
    const NetworkSpec spec = zoo::build(cfg.model, input, cfg.data.dataset == "cifar100" ? 100 : 10);
    fmt::print("{}\n{}", cfg_json.dump(2), spec.describe());
    return 0;
  }
  check_backend_usable(cfg);  // --backend cuda without a GPU: one line, exit 2, no run directory
  const fs::path run_dir = out_dir.empty() ? fs::path("runs") / cfg.name : fs::path(out_dir);
  // What the run directory already holds decides: start, continue, or refuse (never overwrite).
  const auto accepted = [&](const std::string& key) {
    for (const auto& r : resets)
      if (key == r || key.rfind(r + ".", 0) == 0) return true;
    return false;
  };
  const auto refuse_changed = [&](const nlohmann::json& old, const std::string& what) {
    std::vector<std::string> diffs, kept;
    diff_keys(old, nlohmann::json(cfg_json), "", diffs);
    for (const auto& d : diffs)
      if (!accepted(d)) kept.push_back(d);
    if (!kept.empty())
      throw UsageError("--resume", fmt::format("the config differs from {}'s in: {} (pass --reset KEY to accept "
                                               "a change, or choose another --out)",
                                               what, fmt::join(kept, ", ")));
    return !diffs.empty();
  };
  std::optional<train::ResumePoint> from;
  bool legacy_run = false;  // started before metrics.probe_split/curvature_bn existed
  if (fs::exists(run_dir / "config.json")) {
    if (resume_mode == "never")
      throw UsageError("--out", fmt::format("{} holds a run (--resume never); choose another --out", run_dir.string()));
    auto old = io::read_json_file(run_dir / "config.json");
    legacy_run = apply_legacy_metric_keys(old);
    if (legacy_run) {
      // A run from before metrics.probe_split/curvature_bn keeps its old meaning (test, eval)
      // whatever the config says: a sweep's config file spells the new defaults out, and its
      // old points must resume. Its rows keep their columns (trainer.cpp); a run in the new
      // meaning is a new run.
      for (const char* key : {"probe_split", "curvature_bn"}) {
        const auto& was = old["metrics"][key];
        if (resolved.contains("metrics") && resolved["metrics"].contains(key) && resolved["metrics"][key] != was)
          fmt::print(stderr, "note: {} was started before metrics.{} existed; it keeps {} (a new run measures the "
                     "new way)\n", run_dir.string(), key, was.get<std::string>());
        resolved["metrics"][key] = was;
      }
      cfg = parse_config(resolved);
      cfg_json = cfg.to_json();
    }
    const bool changed = refuse_changed(old, (run_dir / "config.json").string());
    if (fs::exists(run_dir / "DONE")) {
      if (!changed) {
        fmt::print("{} is already complete\n", run_dir.string());
        return 0;
      }
      fs::remove(run_dir / "DONE");  // extended with --reset (e.g. more epochs): it continues
    }
    from = train::find_resume_point(run_dir, [&](const std::string& m) { fmt::print(stderr, "warning: {}\n", m); });
    if (from) {
      const auto it = from->file.metadata.find("config");
      if (it != from->file.metadata.end()) {
        nlohmann::json ck;
        try {
          ck = nlohmann::json::parse(it->second);
        } catch (const nlohmann::json::exception&) {
          throw DataError(from->path.string(), "metadata \"config\" is not JSON");
        }
        apply_legacy_metric_keys(ck);
        refuse_changed(ck, from->path.string());
      }
      // Said even with --quiet: which state a run continues from is not progress chatter.
      fmt::print(stderr, "resuming from {} (epoch {}, batch {}, iteration {})\n", from->path.string(), from->at.epoch,
                   from->at.batch, from->at.iteration);
    }
  }
  // Everything that can fail on bad input (data, network, backend, wn source, identity of the
  // data) fails before the run directory is touched: no partial output.
  data::ChannelStats stats;
  const auto data = load_datasets(cfg.data, cfg.seed, &stats);
  const NetworkSpec spec = build_network(cfg, data.train);
  auto backend = make_backend(cfg, spec);
  train::TrainerConfig tc = trainer_config(cfg);
  if (quiet) tc.progress = train::Progress::quiet;
  tc.wn = norm_transfer(cfg, spec);
  const std::string dataset_hash = data::content_hash_hex(data.train);
  if (from && from->file.metadata.count("dataset_hash") && from->file.metadata.at("dataset_hash") != dataset_hash &&
      !accepted("data"))
    throw UsageError("--resume", fmt::format("the training data differ from the checkpoint's (hash {} now, {} in {}); "
                                             "pass --reset data to accept", dataset_hash,
                                             from->file.metadata.at("dataset_hash"), from->path.string()));
  fs::create_directories(run_dir);
  io::remove_stale_temporaries(run_dir);
  // A run from before the probe keys is written without them again, so that every later resume
  // (and `wdlab measure`) reads it with its old meaning, whatever config it is resumed with.
  nlohmann::ordered_json written = cfg_json;
  if (legacy_run)
    for (const char* key : {"probe_split", "curvature_bn"}) written["metrics"].erase(key);
  io::write_file_atomic(run_dir / "config.json", written.dump(2) + "\n");
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
  // Float results of the CPU engine depend on the BLAS thread count and kernel set (OpenBLAS
  // splits its sums differently): recorded so a run can be repeated bit for bit.
  const CpuRuntime cpu = cpu_runtime();
  meta["blas"] = cpu.blas;
  meta["blas_kernels"] = cpu.kernels;
  meta["threads"] = cpu.threads;
  std::string argv_line = "wdlab train";
  for (const auto& a : args) argv_line += " " + a;
  meta["input_pipeline"] = input_pipeline_json(cfg, data, stats);
  meta["argv"] = argv_line;
  meta["started"] = std::time(nullptr);
  io::write_file_atomic(run_dir / "meta.json", meta.dump(2) + "\n");
  if (!quiet) fmt::print(stderr, "{}\n{}\nrun directory: {}\n", backend->describe(), data.train.describe(), run_dir.string());

  nlohmann::json ckpt_meta;
  ckpt_meta["config"] = written.dump();
  ckpt_meta["dataset_hash"] = meta["dataset_hash"];
  ckpt_meta["input_pipeline"] = meta["input_pipeline"];  // README "Use a checkpoint in PyTorch"
  ckpt_meta["network"] = network_json(spec);
  ckpt_meta["blas_kernels"] = cpu.kernels;
  ckpt_meta["threads"] = std::to_string(cpu.threads);
  if (from) {
    const auto& m = from->file.metadata;
    const auto said = [&](const char* k) { return m.count(k) ? m.at(k) : std::string("?"); };
    if ((m.count("threads") && m.at("threads") != std::to_string(cpu.threads)) ||
        (m.count("blas_kernels") && m.at("blas_kernels") != cpu.kernels))
      fmt::print(stderr, "note: the checkpoint was written with {} threads on BLAS kernels {}, this process has {} on {}: "
                 "the continuation will not be bit-identical to an uninterrupted run (--threads {} matches the count)\n",
                 said("threads"), said("blas_kernels"), cpu.threads, cpu.kernels, said("threads"));
  }
  const auto sum = train::train(*backend, data, tc, run_dir, from, ckpt_meta);
  // DONE summarizes the last epoch row, so a run resumed after its final checkpoint (a kill
  // before DONE) reports the same numbers as one that was not interrupted.
  nlohmann::ordered_json last;
  for (const auto& r : train::MetricsLog(run_dir).rows())
    if (!r.contains("event")) last = r;
  nlohmann::ordered_json done;
  done["epochs"] = last.value("epoch", 0);
  done["iterations"] = last.value("iteration", std::int64_t(0));
  for (const char* k : {"train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc", "skipped_steps"})
    if (last.contains(k)) done[k] = last[k];
  done["seconds"] = sum.seconds;  // of this process (a resumed run counts from its restart)
  io::write_file_atomic(run_dir / "DONE", done.dump(2) + "\n");
  fmt::print("{}: {} epochs, test accuracy {:.4f}, test loss {:.4f}, {:.1f} s\n", run_dir.string(),
             last.value("epoch", 0), last.value("test_acc", 0.0), last.value("test_loss", 0.0), sum.seconds);
  return 0;
}

}  // namespace wdlab::app

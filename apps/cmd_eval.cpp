// `wdlab eval`: loss and accuracy of a checkpoint (or of a PyTorch state dict) on a data set.
#include <filesystem>
#include <iostream>
#include <sstream>

#include <boost/program_options.hpp>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "apps/command.hpp"
#include "apps/cuda_setup.hpp"
#include "apps/experiment_config.hpp"
#include "apps/run_setup.hpp"
#include "common/errors.hpp"
#include "common/io/json_config.hpp"
#include "common/io/safetensors.hpp"
#include "common/train/batching.hpp"

namespace po = boost::program_options;

namespace wdlab::app {

namespace {

/// The backend's state with its parameters replaced by those of a PyTorch state dict saved as
/// safetensors (torch_load.save_safetensors): every parameter and BN running statistic by its
/// PyTorch name and shape, F32 or F64 (converted to the run's precision); BN's
/// "num_batches_tracked" is ignored; a missing, extra or mis-shaped tensor is a DataError naming it.
io::SafetensorsFile with_weights(io::SafetensorsFile state, const std::string& path, const std::string& model) {
  const io::SafetensorsFile w = io::load(path);
  for (const auto& [name, t] : w.tensors) {
    if (name.ends_with(".num_batches_tracked")) continue;
    if (name.rfind("optim.", 0) == 0 || !state.tensors.count(name))
      throw DataError(path, fmt::format("tensor \"{}\" is not a parameter of {} (its names are PyTorch's "
                                        "state_dict names: README \"Use a checkpoint in PyTorch\")", name, model));
  }
  for (auto& [name, t] : state.tensors) {
    if (name.rfind("optim.", 0) == 0) continue;
    const auto it = w.tensors.find(name);
    if (it == w.tensors.end())
      throw DataError(path, fmt::format("lacks tensor \"{}\" (shape [{}]) of {}", name, fmt::join(t.shape, ", "), model));
    const io::Tensor& src = it->second;
    if (src.shape != t.shape)
      throw DataError(path, fmt::format("tensor \"{}\" has shape [{}], {} expects [{}]", name, fmt::join(src.shape, ", "),
                                        model, fmt::join(t.shape, ", ")));
    if (src.dtype != "F32" && src.dtype != "F64")
      throw DataError(path, fmt::format("tensor \"{}\" has dtype {}, expected F32 or F64", name, src.dtype));
    const std::string what = fmt::format("{}: tensor \"{}\"", path, name);
    if (t.dtype == "F64")
      t = src.dtype == "F64" ? src : io::Tensor::from_f64(t.shape, [&] {
        const auto f = src.to_f32(what);
        return std::vector<double>(f.begin(), f.end());
      }());
    else
      t = src.dtype == "F32" ? src : io::Tensor::from_f32(t.shape, [&] {
        const auto d = src.to_f64(what);
        return std::vector<float>(d.begin(), d.end());
      }());
  }
  return state;
}

/// Logits (N × K, row-major, double) and labels of `d` in evaluation mode, in eval batches.
void dump_logits(train::Backend& backend, const data::Dataset& d, int batch_size, const std::string& path) {
  std::vector<double> logits;
  std::vector<std::int64_t> labels;
  train::HostBatcher buf;
  std::vector<std::uint32_t> ids;
  for (std::size_t start = 0; start < d.size(); start += std::size_t(batch_size)) {
    const std::size_t n = std::min<std::size_t>(std::size_t(batch_size), d.size() - start);
    ids.resize(n);
    for (std::size_t i = 0; i < n; ++i) ids[i] = std::uint32_t(start + i);
    const auto l = backend.logits(buf.fill(d, ids, train::AugmentSpec{}));
    logits.insert(logits.end(), l.begin(), l.end());
    for (std::size_t i = 0; i < n; ++i) labels.push_back(d.labels[start + i]);
  }
  io::SafetensorsFile f;
  f.tensors["logits"] = io::Tensor::from_f64({std::int64_t(d.size()), std::int64_t(d.num_classes)}, logits);
  f.tensors["labels"] = io::Tensor::from_i64({std::int64_t(d.size())}, labels);
  io::save(path, f);
}

}  // namespace

int cmd_eval(const Args& args) {
  std::string checkpoint, config, weights, dump, dataset, data_dir, split = "test", format = "table",
      backend_name = "reference";
  po::options_description desc(
      "wdlab eval --checkpoint FILE [--weights FILE] [--dataset NAME] [--data-dir DIR]\n"
      "           [--split test|train|val] [--dump-logits FILE] [--backend reference|cuda]\n"
      "wdlab eval --config FILE --weights FILE [...]\n\n"
      "Evaluates a checkpoint (BN in evaluation mode, running statistics). The network and the\n"
      "normalization come from the config stored in the checkpoint; --dataset and --data-dir\n"
      "evaluate on another data set of the same shape. Checkpoints of either backend load on\n"
      "either: --backend cuda evaluates on the GPU whatever backend trained the run.\n"
      "--weights evaluates a PyTorch state dict saved as safetensors (PyTorch's names and shapes,\n"
      "F32 or F64; num_batches_tracked ignored) in the network of --checkpoint or of an experiment\n"
      "--config. --dump-logits writes the logits (\"logits\" [N, K] F64, \"labels\" [N] I64) as\n"
      "safetensors, from either backend.\n\noptions");
  desc.add_options()
      ("help,h", "this text")
      ("checkpoint", po::value(&checkpoint), "a .safetensors checkpoint written by wdlab train")
      ("config", po::value(&config), "an experiment config (JSON), with --weights instead of --checkpoint")
      ("weights", po::value(&weights), "a PyTorch state dict saved as safetensors (README \"Use a checkpoint in PyTorch\")")
      ("dump-logits", po::value(&dump), "write the logits and labels to FILE (safetensors)")
      ("dataset", po::value(&dataset), "fashion-mnist | mnist | cifar10 | cifar100 (default: the run's)")
      ("data-dir", po::value(&data_dir), "directory of the data set's files")
      ("split", po::value(&split)->default_value(split), "test | train | val")
      ("format", po::value(&format)->default_value(format), "table | json")
      ("backend", po::value(&backend_name)->default_value(backend_name), "reference | cuda (float32; needs a GPU)");
  ExperimentConfig cfg;
  io::SafetensorsFile file;
  if (!parse_options(desc, args, [&] {
    if (checkpoint.empty() && config.empty()) throw UsageError("--checkpoint", "is required (or --config with --weights)");
    if (!checkpoint.empty() && !config.empty())
      throw UsageError("--config", "give --checkpoint or --config, not both");
    if (!config.empty() && weights.empty()) throw UsageError("--config", "needs --weights (the parameters to evaluate)");
    if (split != "test" && split != "train" && split != "val")
      throw UsageError("--split", fmt::format("expected test, train or val, got '{}'", split));
    if (format != "table" && format != "json")
      throw UsageError("--format", fmt::format("expected table or json, got '{}'", format));
  }))
    return 0;
  const BackendKind backend_kind = backend_option(backend_name);  // no GPU: one line, exit 2, nothing read
  const std::string source = checkpoint.empty() ? weights : checkpoint;
  if (!checkpoint.empty()) {
    file = io::load(checkpoint);
    if (!file.metadata.count("config"))
      throw DataError(checkpoint, "metadata has no 'config' (not written by wdlab train?)");
    cfg = parse_config(io::parse_json_text(file.metadata.at("config"), checkpoint + ": metadata config"));
  } else {
    cfg = parse_config(io::read_json_file(config));
  }
  if (!dataset.empty()) cfg.data.dataset = dataset;
  if (!data_dir.empty()) cfg.data.data_dir = data_dir;
  use_backend(cfg, backend_kind);
  const auto data = load_datasets(cfg.data, cfg.seed);
  const NetworkSpec spec = build_network(cfg, data.train);
  auto backend = make_backend(cfg, spec);
  if (!weights.empty()) file = with_weights(backend->state(), weights, spec.model);
  backend->load_state(file);
  const data::Dataset& d = split == "test" ? data.test : split == "train" ? data.train : data.val;
  if (d.size() == 0) throw UsageError("--split", "the run has no validation split");
  const auto r = train::evaluate(*backend, d, cfg.eval_batch_size);
  if (!dump.empty()) dump_logits(*backend, d, cfg.eval_batch_size, dump);
  if (format == "json") {
    nlohmann::ordered_json j{{"checkpoint", source}, {"dataset", cfg.data.dataset}, {"split", split},
                             {"examples", r.n}, {"loss", r.loss()}, {"accuracy", r.accuracy()}};
    if (!weights.empty()) j["weights"] = weights;
    fmt::print("{}\n", j.dump(2));
  } else {
    fmt::print("{} on {} {} ({} examples): loss {:.5f}, accuracy {:.4f}\n", source, cfg.data.dataset, split,
               r.n, r.loss(), r.accuracy());
  }
  return 0;
}

}  // namespace wdlab::app

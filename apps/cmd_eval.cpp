// `wdlab eval`: loss and accuracy of a checkpoint on a data set.
#include <filesystem>
#include <iostream>
#include <sstream>

#include <boost/program_options.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "apps/command.hpp"
#include "apps/cuda_setup.hpp"
#include "apps/experiment_config.hpp"
#include "apps/run_setup.hpp"
#include "common/errors.hpp"
#include "common/io/json_config.hpp"
#include "common/io/safetensors.hpp"

namespace po = boost::program_options;

namespace wdlab::app {

int cmd_eval(const Args& args) {
  std::string checkpoint, dataset, data_dir, split = "test", format = "table", backend_name = "reference";
  po::options_description desc(
      "wdlab eval --checkpoint FILE [--dataset NAME] [--data-dir DIR] [--split test|train|val]\n"
      "           [--backend reference|cuda]\n\n"
      "Evaluates a checkpoint (BN in evaluation mode, running statistics). The network and the\n"
      "normalization come from the config stored in the checkpoint; --dataset and --data-dir\n"
      "evaluate on another data set of the same shape. Checkpoints of either backend load on\n"
      "either: --backend cuda evaluates on the GPU whatever backend trained the run.\n\noptions");
  desc.add_options()
      ("help,h", "this text")
      ("checkpoint", po::value(&checkpoint), "a .safetensors checkpoint written by wdlab train")
      ("dataset", po::value(&dataset), "fashion-mnist | mnist | cifar10 | cifar100 (default: the run's)")
      ("data-dir", po::value(&data_dir), "directory of the data set's files")
      ("split", po::value(&split)->default_value(split), "test | train | val")
      ("format", po::value(&format)->default_value(format), "table | json")
      ("backend", po::value(&backend_name)->default_value(backend_name), "reference | cuda (float32; needs a GPU)");
  ExperimentConfig cfg;
  io::SafetensorsFile file;
  if (!parse_options(desc, args, [&] {
    if (checkpoint.empty()) throw UsageError("--checkpoint", "is required");
    if (split != "test" && split != "train" && split != "val")
      throw UsageError("--split", fmt::format("expected test, train or val, got '{}'", split));
    if (format != "table" && format != "json")
      throw UsageError("--format", fmt::format("expected table or json, got '{}'", format));
  }))
    return 0;
  const BackendKind backend_kind = backend_option(backend_name);  // no GPU: one line, exit 2, nothing read
  file = io::load(checkpoint);
  if (!file.metadata.count("config"))
    throw DataError(checkpoint, "metadata has no 'config' (not written by wdlab train?)");
  cfg = parse_config(io::parse_json_text(file.metadata.at("config"), checkpoint + ": metadata config"));
  if (!dataset.empty()) cfg.data.dataset = dataset;
  if (!data_dir.empty()) cfg.data.data_dir = data_dir;
  use_backend(cfg, backend_kind);
  const auto data = load_datasets(cfg.data, cfg.seed);
  const NetworkSpec spec = build_network(cfg, data.train);
  auto backend = make_backend(cfg, spec);
  backend->load_state(file);
  const data::Dataset& d = split == "test" ? data.test : split == "train" ? data.train : data.val;
  if (d.size() == 0) throw UsageError("--split", "the run has no validation split");
  const auto r = train::evaluate(*backend, d, cfg.eval_batch_size);
  if (format == "json") {
    nlohmann::ordered_json j{{"checkpoint", checkpoint}, {"dataset", cfg.data.dataset}, {"split", split},
                             {"examples", r.n}, {"loss", r.loss()}, {"accuracy", r.accuracy()}};
    fmt::print("{}\n", j.dump(2));
  } else {
    fmt::print("{} on {} {} ({} examples): loss {:.5f}, accuracy {:.4f}\n", checkpoint, cfg.data.dataset, split,
               r.n, r.loss(), r.accuracy());
  }
  return 0;
}

}  // namespace wdlab::app

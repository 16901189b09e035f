#pragma once
// A sweep grid file and its expansion into a manifest of resolved configs (`wdlab sweep`).
//
// Grid file (JSON; unknown keys are errors; paths relative to the grid file):
//   { "name": "mlp-sgd",                       optional; default: the file's stem
//     "base": "../laptop/mlp-sgd-none.json",   a wdlab config (or an official one, mapped)
//     "set": {"epochs": 5, "arch.width": 256}, fixed overrides, dotted keys as `train --set`
//     "axes": {"lr": [0.01, 0.1],               the grid: the product of the axes, in order
//              "reg": [{"regularization": "none", "weight_decay": 0},      an object value sets
//                      {"regularization": "wd", "weight_decay": 0.1}]},    several keys at once
//     "select": "val_acc",                     the metric to maximize (final epoch); default
//     "final": true }                          retrain the best on train+validation (validation 0)
//
// A point's id is the first 12 hex digits of the 64-bit FNV-1a hash of its resolved config
// (config.json as `wdlab train` writes it) without "name": the same settings get the same id
// whatever the grid's order or name, so re-running a grown grid reuses finished runs.
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace wdlab::app {

struct GridPoint {
  std::string id;
  nlohmann::ordered_json overrides;  // axis values of this point (dotted key -> value)
  nlohmann::ordered_json config;     // resolved config (ExperimentConfig::to_json), name set
};

struct Grid {
  std::string name;
  std::filesystem::path file, base;
  nlohmann::ordered_json set;                                          // dotted key -> value
  std::vector<std::pair<std::string, std::vector<nlohmann::json>>> axes;  // in file order
  std::string select = "val_acc";
  bool final_retrain = true;
};

/// Reads and checks a grid file (UsageError/DataError naming the file and key).
Grid read_grid(const std::filesystem::path& file);

/// The product of the axes, each point resolved and validated through parse_config.
std::vector<GridPoint> expand_grid(const Grid& g);

/// The stable id of a resolved config (see above).
std::string config_id(const nlohmann::ordered_json& resolved);

/// The config of the final run: `best`'s config with validation 0 (train on train+validation,
/// paper App. A), named "<grid>-final".
nlohmann::ordered_json final_config(const Grid& g, const nlohmann::ordered_json& best);

/// Resolves a config file plus dotted overrides to our resolved JSON (as written to config.json).
nlohmann::ordered_json resolve_with_overrides(const std::filesystem::path& config_file,
                                              const nlohmann::json& set_object,
                                              const std::string& where);

/// One line "k1=v1 k2=v2" for progress output.
std::string describe_overrides(const nlohmann::ordered_json& overrides);

}  // namespace wdlab::app

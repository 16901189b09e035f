#pragma once
// A suite of experiments for `wdlab reproduce` (configs/laptop/suite.json, configs/laptop/demo.json,
// configs/paper/suite.json). Paths are relative to the suite file.
//   { "name": "laptop", "description": "...",
//     "experiments": [
//       { "name": "mech1-elr", "description": "...",
//         "runs": [ { "name": "mlp-bn-sgd-wd", "config": "suite/mlp-bn-sgd.json",
//                     "set": {"regularization": "wd", "weight_decay": 5e-4},
//                     "after": ["mlp-bn-sgd-none"] } ],        runs that must finish first
//         "grids": ["grids/mlp-bn-sgd.json"] } ] }             sweeps (wdlab sweep)
// In "set" string values, "{exp}" becomes the experiment's output directory (so a run can name
// another run's directory, e.g. the source of wn-conv norms).
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace wdlab::app {

struct SuiteRun {
  std::string name;
  std::filesystem::path config;
  nlohmann::json set = nlohmann::json::object();  // dotted keys (nested objects allowed)
  std::vector<std::string> after;
};

struct SuiteExperiment {
  std::string name, description;
  std::vector<SuiteRun> runs;
  std::vector<std::filesystem::path> grids;
};

struct Suite {
  std::string name, description;
  std::filesystem::path file;
  std::vector<SuiteExperiment> experiments;
};

Suite read_suite(const std::filesystem::path& file);

/// `set` with "{exp}" replaced by `exp_dir` in string values.
nlohmann::json substitute(const nlohmann::json& set, const std::string& exp_dir);

}  // namespace wdlab::app

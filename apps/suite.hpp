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
//
// Seeds: a run may have "seeds": [1, 2, 3] (non-negative integers, distinct). read_suite expands it
// into one run per seed, named "<name>-s<seed>", with "seed": <seed> added to its "set" (a "seed"
// already in "set" is an error), and "{seed}" replaced by the seed in the string values of "set"
// and in "after" (so "wn-conv" with "seeds" can wait for "wd-all-s{seed}" and read
// "{exp}/wd-all-s{seed}"). A run without "seeds" keeps its name, and "{seed}" is an error there.
// Errors name the suite file and the field.
#include <cstdint>
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
  std::int64_t seed = -1;  // the seed it was expanded for, -1: the run has no "seeds"
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

/// `j` with every occurrence of `token` in its string values (objects and arrays walked) replaced by `value`.
nlohmann::json replace_in_strings(const nlohmann::json& j, const std::string& token, const std::string& value);

}  // namespace wdlab::app

#pragma once
// The tiny sweep grid of the sweep tests and helpers to read a sweep's output: a 2x2 grid of a tiny
// MLP on 320 Fashion-MNIST images (64 held out), one epoch of 8 steps, where one learning rate
// (1e-6) learns nothing, so the best point by validation is known independently (lr 0.05).
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "run_command.hpp"

namespace wdlab::test {

/// A base config and a grid file in `dir` (`set` adds fixed overrides); returns the grid's path.
inline std::filesystem::path write_tiny_grid(const std::filesystem::path& dir, const nlohmann::json& set = {}) {
  nlohmann::json base = {{"name", "tiny"},       {"train_subset", 320}, {"validation", 64},
                         {"test_subset", 128},   {"model", "mlp"},      {"arch", {{"depth", 1}, {"width", 16}}},
                         {"optimizer", "sgd"},   {"epochs", 1},         {"batch_size", 32},
                         {"regularization", "wd"}, {"checkpoint", {{"keep", 1}}}};
  std::ofstream(dir / "base.json") << base.dump(2);
  nlohmann::json fixed = {{"momentum", 0.9}};
  if (set.is_object()) fixed.update(set);
  nlohmann::json grid = {{"name", "tiny"},
                         {"base", "base.json"},
                         {"set", fixed},
                         {"axes", {{"lr", {1e-6, 0.05}}, {"weight_decay", {0.0, 1e-4}}}}};
  std::ofstream(dir / "grid.json") << grid.dump(2);
  return dir / "grid.json";
}

/// The point ids of a `sweep --dry-run` listing, in grid order.
inline std::vector<std::string> ids_of(const std::string& dry_run_out) {
  std::vector<std::string> ids;
  const std::regex re("^  ([0-9a-f]{12})  (.*)$");
  std::istringstream in(dry_run_out);
  for (std::string line; std::getline(in, line);) {
    std::smatch m;
    if (std::regex_match(line, m, re)) ids.push_back(m[1]);
  }
  return ids;
}

inline int count(const std::string& s, const std::string& what) {
  int n = 0;
  for (std::size_t p = s.find(what); p != std::string::npos; p = s.find(what, p + 1)) ++n;
  return n;
}

inline nlohmann::json manifest(const std::filesystem::path& out) {
  return nlohmann::json::parse(slurp(out / "manifest.json"));
}

}  // namespace wdlab::test

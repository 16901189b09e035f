#pragma once
// The runs a report reads: config, DONE and the metrics rows of each run directory, and the
// classification the tables need (regularization column, BN, augmentation, network label).
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace wdlab::app {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

struct RunRecord {
  std::filesystem::path dir;
  std::string group;  // the directory holding the run (the suite's experiment), or the sweep's name
  std::string name;   // the run directory's name
  nlohmann::json config;
  nlohmann::json done;  // null for an unfinished run
  std::vector<nlohmann::ordered_json> rows;  // key order as logged (first_key relies on it)

  std::string cfg_str(const char* key, const std::string& def = "") const;
  double cfg_num(const char* key, double def = kNaN) const;
  bool bn() const;
  bool augment() const;
  std::string optimizer() const { return cfg_str("optimizer"); }
  /// The config's "seed" (-1 when absent or not an integer).
  std::int64_t seed() const;
  /// The run name without the "-s<seed>" suffix `wdlab reproduce` gives the runs of a "seeds" list
  /// (suite.hpp); the name itself when it has no such suffix.
  std::string setting() const;
  std::string dataset_label() const;   // CIFAR-10, F-MNIST, ...
  std::string network_label() const;   // VGG16, ResNet32, MLP 2x1000, ConvNet 32, ...
  /// "none", "wd" (the paper's WD column: decoupled decay on all layers; for SGD also L2, which
  /// the official SGD uses), "l2", "wd-conv", "wd-fc", "wd-list", "wn-conv", "wd-fc+wn-conv".
  std::string reg_class() const;
  /// A key for grouping runs that differ only in regularization (and lr/β, chosen per cell).
  std::string family() const;
  /// The value at the last row, or NaN when absent or not a number.
  double last(const std::string& key) const;
  double first(const std::string& key) const;
  /// Epochs trained: the last row's "epoch" (rows start at epoch 0, the initial state, in runs
  /// written since that row exists; at epoch 1 before), 0 without rows.
  int epochs() const;
  std::vector<double> series(const std::string& key) const;
  /// The first metric key in the rows beginning with prefix (e.g. "elr."), or "".
  std::string first_key(const std::string& prefix) const;
  /// Final test accuracy (DONE, else the last row), NaN when none.
  double test_acc() const;
};

/// Finds runs in `inputs` (see report.hpp); DataError on unreadable files.
std::vector<RunRecord> load_runs(const std::vector<std::filesystem::path>& inputs);

/// Pearson correlation; NaN when fewer than 3 points or no variance.
double pearson(const std::vector<double>& x, const std::vector<double>& y);

}  // namespace wdlab::app

#pragma once
// metrics.jsonl (one JSON object per epoch) and metrics.csv (the same rows, header from the
// first row) in a run directory. Rows are appended and flushed as they come; on resume the rows
// after the checkpoint's epoch are dropped by rewriting both files atomically.
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace wdlab::train {

class MetricsLog {
 public:
  explicit MetricsLog(std::filesystem::path run_dir);
  /// Keeps the rows whose "epoch" ≤ epoch (all rows are dropped for epoch 0).
  void truncate_after_epoch(int epoch);
  /// Appends a row; its keys must equal the CSV header once one exists.
  void append(const nlohmann::ordered_json& row);
  /// The rows of metrics.jsonl (DataError naming the line if one is not JSON).
  std::vector<nlohmann::ordered_json> rows() const;

 private:
  std::filesystem::path jsonl_, csv_;
};

}  // namespace wdlab::train

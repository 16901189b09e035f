#pragma once
// metrics.jsonl (one JSON object per epoch) and metrics.csv (the same rows, header from the
// first row) in a run directory. Rows are appended and flushed as they come; on resume the rows
// after the checkpoint's position are dropped by rewriting both files atomically.
// Event rows (an "event" key: nonfinite, divergence, damping_raised, ...) go to metrics.jsonl
// only, with "epoch" (the epoch in progress) and "step" (the iteration of the step, 0-based);
// readers that want the per-epoch table skip rows that have "event".
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace wdlab::train {

class MetricsLog {
 public:
  explicit MetricsLog(std::filesystem::path run_dir);
  /// Keeps the epoch rows whose "epoch" ≤ epoch and the event rows whose "step" < iteration
  /// (epoch −1, iteration 0 drops every row). A torn last line (a kill during an append) is
  /// dropped too.
  void truncate_after(int epoch, std::int64_t iteration);
  /// Appends an epoch row; its keys must equal the CSV header once one exists.
  void append(const nlohmann::ordered_json& row);
  /// Appends an event row to metrics.jsonl.
  void append_event(const nlohmann::ordered_json& row);
  /// The rows of metrics.jsonl, events included (DataError naming the line if one is not JSON;
  /// with Tail::tolerate_torn, an unparsable last line without its newline is left out).
  enum class Tail { strict, tolerate_torn };
  std::vector<nlohmann::ordered_json> rows(Tail tail = Tail::strict) const;

 private:
  std::filesystem::path jsonl_, csv_;
};

}  // namespace wdlab::train

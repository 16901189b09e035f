#include "common/train/metrics_log.hpp"

#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "common/errors.hpp"
#include "common/io/atomic_file.hpp"

namespace wdlab::train {

namespace fs = std::filesystem;

namespace {

std::string csv_header(const nlohmann::ordered_json& row) {
  std::string s;
  for (const auto& [k, v] : row.items()) s += (s.empty() ? "" : ",") + k;
  return s;
}

std::string csv_line(const nlohmann::ordered_json& row) {
  std::string s;
  bool first = true;
  for (const auto& [k, v] : row.items()) {
    if (!first) s += ",";
    first = false;
    s += v.is_string() ? v.get<std::string>() : v.dump();
  }
  return s;
}

void append_line(const fs::path& p, const std::string& line) {
  std::ofstream out(p, std::ios::app);
  out << line << '\n';
  out.flush();
  if (!out) throw DataError(p.string(), "cannot append a metrics row");
}

}  // namespace

MetricsLog::MetricsLog(fs::path run_dir)
    : jsonl_(run_dir / "metrics.jsonl"), csv_(run_dir / "metrics.csv") {}

std::vector<nlohmann::ordered_json> MetricsLog::rows() const {
  std::vector<nlohmann::ordered_json> out;
  std::ifstream in(jsonl_);
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    if (line.empty()) continue;
    try {
      out.push_back(nlohmann::ordered_json::parse(line));
    } catch (const nlohmann::json::exception& e) {
      throw DataError(jsonl_.string(), fmt::format("line {}: not JSON ({})", n, e.what()));
    }
  }
  return out;
}

void MetricsLog::truncate_after_epoch(int epoch) {
  if (!fs::exists(jsonl_) && !fs::exists(csv_)) return;
  std::string jsonl, csv;
  for (const auto& r : rows()) {
    if (!r.contains("epoch") || r["epoch"].get<int>() > epoch) continue;
    if (csv.empty()) csv = csv_header(r) + "\n";
    jsonl += r.dump() + "\n";
    csv += csv_line(r) + "\n";
  }
  io::write_file_atomic(jsonl_, jsonl);
  io::write_file_atomic(csv_, csv);
}

void MetricsLog::append(const nlohmann::ordered_json& row) {
  const std::string header = csv_header(row);
  std::string existing;
  if (fs::exists(csv_)) {
    std::ifstream in(csv_);
    std::getline(in, existing);
  }
  if (existing.empty()) {
    append_line(csv_, header);
  } else if (existing != header) {
    throw InternalError(fmt::format("{}: row columns changed (header '{}', row '{}')", csv_.string(),
                                    existing, header));
  }
  append_line(csv_, csv_line(row));
  append_line(jsonl_, row.dump());
}

}  // namespace wdlab::train

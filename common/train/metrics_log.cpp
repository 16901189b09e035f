#include "common/train/metrics_log.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "common/errors.hpp"
#include "common/fault.hpp"
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

// One write(2) of the whole line with O_APPEND: a kill leaves the line whole or absent, except for
// a line longer than the kernel writes at once, whose torn tail the reader tolerates.
void append_line(const fs::path& p, const std::string& line) {
  const std::string text = line + '\n';
  const int fd = ::open(p.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0666);
  if (fd < 0) {
    const int err = errno;
    throw DataError(p.string(), fmt::format("cannot open to append a metrics row: {}", std::strerror(err)));
  }
  std::size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      throw DataError(p.string(), fmt::format("cannot append a metrics row: {}", std::strerror(err)));
    }
    done += std::size_t(n);
  }
  if (::close(fd) != 0) {
    const int err = errno;
    throw DataError(p.string(), fmt::format("cannot append a metrics row: {}", std::strerror(err)));
  }
}

}  // namespace

MetricsLog::MetricsLog(fs::path run_dir)
    : jsonl_(run_dir / "metrics.jsonl"), csv_(run_dir / "metrics.csv") {}

std::vector<nlohmann::ordered_json> MetricsLog::rows(Tail tail) const {
  std::vector<nlohmann::ordered_json> out;
  std::ifstream in(jsonl_);
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    if (line.empty()) continue;
    try {
      out.push_back(nlohmann::ordered_json::parse(line));
    } catch (const nlohmann::json::exception& e) {
      // getline sets eof when the last line had no newline: the append it came from was cut.
      if (tail == Tail::tolerate_torn && in.eof()) break;
      throw DataError(jsonl_.string(), fmt::format("line {}: not JSON ({})", n, e.what()));
    }
  }
  return out;
}

void MetricsLog::truncate_after(int epoch, std::int64_t iteration) {
  if (!fs::exists(jsonl_) && !fs::exists(csv_)) return;
  std::string jsonl, csv;
  for (const auto& r : rows(Tail::tolerate_torn)) {
    if (r.contains("event")) {
      if (!r.contains("step") || r["step"].get<std::int64_t>() >= iteration) continue;
      jsonl += r.dump() + "\n";
      continue;
    }
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
  fault::point("metrics.between_files", "metrics");
  append_line(jsonl_, row.dump());
}

void MetricsLog::append_event(const nlohmann::ordered_json& row) {
  WDLAB_CHECK(row.contains("event") && row.contains("step"), "an event row needs \"event\" and \"step\"");
  append_line(jsonl_, row.dump());
}

}  // namespace wdlab::train

#pragma once
// Checkpoints of a run (run_dir/checkpoints/): safetensors files holding the backend's state
// (parameters, BN running statistics, optimizer state under "optim.") and, in the metadata, where
// the run stands and what produced it. Durability (issue "nothing lost"):
//   write: io::write_file_atomic (O_EXCL temporary, full contents, fsync, rename, directory fsync)
//          of the file with a CRC-32 over its canonical bytes; then `latest`, the same way; then
//          the oldest beyond the keep-count are pruned.
//   read:  the newest file by name that parses and whose CRC matches; a truncated or corrupt one
//          is renamed to <name>.corrupt (kept for inspection, out of the way of pruning) and the
//          previous one is tried. `latest` is a pointer for people and tools; the directory
//          listing is the truth, so a kill between the checkpoint's rename and `latest`'s loses
//          nothing.
// Names sort in run order: epoch-0003.safetensors < epoch-0004-partial-000000050.safetensors <
// epoch-0004.safetensors ('-' < '.').
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/io/safetensors.hpp"

namespace wdlab::train {

/// Where a run stands: `epoch` epochs complete, `batch` batches into the next one with the running
/// sums of that partial epoch (a checkpoint taken on a signal), `iteration` optimizer steps done.
struct Position {
  int epoch = 0;
  std::int64_t iteration = 0;
  std::int64_t batch = 0;
  double loss_sum = 0;
  std::int64_t correct = 0, seen = 0;
  double initial_loss = 0;       // the first step's loss (the divergence rule's reference)
  std::int64_t skipped_steps = 0;  // steps skipped under --on-nonfinite skip, whole run
};

/// The checksum field in the metadata: "crc32:xxxxxxxx" over serialize(file without this field).
inline constexpr const char* kChecksumKey = "checksum";

/// Adds (or replaces) the checksum of `file`.
void add_checksum(io::SafetensorsFile& file);
/// DataError naming the file when the checksum is missing or does not match.
void verify_checksum(const io::SafetensorsFile& file);

/// Writes the checkpoint for position `at` (state + `meta` + the position), then `latest`, then
/// prunes to `keep` files. Returns the checkpoint's path.
std::filesystem::path write_checkpoint(io::SafetensorsFile state, const std::filesystem::path& run_dir,
                                       const Position& at, const nlohmann::json& meta, int keep);

struct ResumePoint {
  std::filesystem::path path;
  io::SafetensorsFile file;  // verified
  Position at;
};

/// The newest valid checkpoint in run_dir/checkpoints, or nothing when there is none. Each
/// rejected file is passed to `report` with the reason, renamed to *.corrupt, and skipped.
std::optional<ResumePoint> find_resume_point(const std::filesystem::path& run_dir,
                                             const std::function<void(const std::string&)>& report);

/// FNV-1a 64 of a string, as 16 hex digits (the config's identity in checkpoint metadata).
std::string hash_hex(const std::string& s);

}  // namespace wdlab::train

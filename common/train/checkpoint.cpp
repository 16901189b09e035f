#include "common/train/checkpoint.hpp"

#include <zlib.h>

#include <algorithm>

#include <fmt/format.h>

#include "common/errors.hpp"
#include "common/hash.hpp"
#include "common/io/atomic_file.hpp"

namespace wdlab::train {

namespace fs = std::filesystem;

namespace {

std::string crc_of(const io::SafetensorsFile& file) {
  io::SafetensorsFile bare = file;
  bare.metadata.erase(kChecksumKey);
  const std::vector<std::byte> bytes = io::serialize(bare);
  // zlib's crc32 takes a uInt length: feed the buffer in chunks below 4 GiB.
  uLong crc = crc32(0L, Z_NULL, 0);
  for (std::size_t off = 0; off < bytes.size();) {
    const std::size_t n = std::min<std::size_t>(bytes.size() - off, 1u << 30);
    crc = crc32(crc, reinterpret_cast<const Bytef*>(bytes.data() + off), uInt(n));
    off += n;
  }
  return fmt::format("crc32:{:08x}", crc);
}

Position position_of(const io::SafetensorsFile& f) {
  const auto num = [&](const char* key, bool required) -> std::optional<std::string> {
    const auto it = f.metadata.find(key);
    if (it == f.metadata.end()) {
      if (required) throw DataError(f.source, fmt::format("metadata lacks \"{}\"", key));
      return std::nullopt;
    }
    return it->second;
  };
  Position p;
  try {
    p.epoch = std::stoi(*num("epoch", true));
    p.iteration = std::stoll(*num("iteration", true));
    if (auto v = num("batch", false)) p.batch = std::stoll(*v);
    if (auto v = num("loss_sum", false)) p.loss_sum = std::stod(*v);
    if (auto v = num("correct", false)) p.correct = std::stoll(*v);
    if (auto v = num("seen", false)) p.seen = std::stoll(*v);
    if (auto v = num("initial_loss", false)) p.initial_loss = std::stod(*v);
    if (auto v = num("skipped_steps", false)) p.skipped_steps = std::stoll(*v);
  } catch (const std::logic_error&) {  // stoi/stod: invalid_argument, out_of_range
    throw DataError(f.source, "metadata holds a position field that is not a number");
  }
  if (p.epoch < 0 || p.iteration < 0 || p.batch < 0)
    throw DataError(f.source, "metadata holds a negative epoch, iteration or batch");
  return p;
}

}  // namespace

void add_checksum(io::SafetensorsFile& file) { file.metadata[kChecksumKey] = crc_of(file); }

void verify_checksum(const io::SafetensorsFile& file) {
  const auto it = file.metadata.find(kChecksumKey);
  if (it == file.metadata.end())
    throw DataError(file.source, "no checksum in the metadata (not a wdlab checkpoint, or written by a version before 0.2)");
  const std::string want = crc_of(file);
  if (it->second != want)
    throw DataError(file.source, fmt::format("checksum mismatch: the file says {}, its contents give {}", it->second, want));
}

fs::path write_checkpoint(io::SafetensorsFile f, const fs::path& run_dir, const Position& at,
                          const nlohmann::json& meta, int keep) {
  const fs::path dir = run_dir / "checkpoints";
  fs::create_directories(dir);
  for (const auto& [k, v] : meta.items()) f.metadata[k] = v.is_string() ? v.get<std::string>() : v.dump();
  f.metadata["epoch"] = std::to_string(at.epoch);
  f.metadata["iteration"] = std::to_string(at.iteration);
  f.metadata["batch"] = std::to_string(at.batch);
  f.metadata["loss_sum"] = fmt::format("{:.17g}", at.loss_sum);
  f.metadata["correct"] = std::to_string(at.correct);
  f.metadata["seen"] = std::to_string(at.seen);
  f.metadata["initial_loss"] = fmt::format("{:.17g}", at.initial_loss);
  f.metadata["skipped_steps"] = std::to_string(at.skipped_steps);
  if (f.metadata.count("config")) f.metadata["config_hash"] = hash_hex(f.metadata.at("config"));
  add_checksum(f);
  const fs::path path = at.batch == 0 ? dir / fmt::format("epoch-{:04d}.safetensors", at.epoch)
                                      : dir / fmt::format("epoch-{:04d}-partial-{:09d}.safetensors",
                                                          at.epoch + 1, at.batch);
  io::save(path, f);
  io::write_file_atomic(dir / "latest", path.filename().string() + "\n");
  std::vector<fs::path> all;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().extension() == ".safetensors") all.push_back(e.path());
  std::sort(all.begin(), all.end());
  for (std::size_t i = 0; i + std::size_t(keep) < all.size(); ++i)
    if (all[i] != path) fs::remove(all[i]);
  return path;
}

std::optional<ResumePoint> find_resume_point(const fs::path& run_dir,
                                             const std::function<void(const std::string&)>& report) {
  const fs::path dir = run_dir / "checkpoints";
  if (!fs::is_directory(dir)) return std::nullopt;
  std::vector<fs::path> all;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().extension() == ".safetensors" && e.is_regular_file()) all.push_back(e.path());
  std::sort(all.rbegin(), all.rend());
  for (const auto& p : all) {
    try {
      ResumePoint r{p, io::load(p), {}};
      verify_checksum(r.file);
      r.at = position_of(r.file);
      return r;
    } catch (const DataError& e) {
      fs::path quarantine = p;
      quarantine += ".corrupt";
      std::error_code ec;
      fs::rename(p, quarantine, ec);
      report(fmt::format("checkpoint {} rejected ({}); {}; trying the previous one", p.string(), e.what(),
                         ec ? "could not rename it: " + ec.message() : "renamed to " + quarantine.filename().string()));
    }
  }
  return std::nullopt;
}

std::string hash_hex(const std::string& s) { return fnv1a_hex(s); }

}  // namespace wdlab::train

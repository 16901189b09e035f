#include "common/data/cifar.hpp"

#include <cstdint>
#include <fstream>
#include <system_error>
#include <vector>

#include <fmt/format.h>

#include "common/errors.hpp"

namespace wdlab::data {
namespace fs = std::filesystem;

namespace {

struct LabelField {
  const char* name;  // as said in errors
  int offset;        // within the record
  int classes;
};

std::vector<LabelField> label_fields(CifarVariant v) {
  if (v == CifarVariant::cifar10) return {{"label", 0, 10}};
  return {{"coarse label", 0, 20}, {"fine label", 1, 100}};
}

std::string source_hint(CifarVariant v) {
  return fmt::format("expected the {} binary version, extracted (see "
                     "https://www.cs.toronto.edu/~kriz/cifar.html); nothing is downloaded",
                     to_string(v));
}

// Reads one file and appends its records to `d`.
void append_file(const fs::path& path, CifarVariant v, Dataset& d) {
  const std::string file = path.string();
  std::error_code ec;
  if (!fs::is_regular_file(path, ec))
    throw DataError(file, "file not found; " + source_hint(v));
  const std::uintmax_t size = fs::file_size(path, ec);
  if (ec) throw DataError(file, "cannot read its size: " + ec.message());
  const std::size_t rec = std::size_t(cifar_record_bytes(v));
  if (size == 0 || size % rec != 0) {
    const CifarVariant other = v == CifarVariant::cifar10 ? CifarVariant::cifar100
                                                          : CifarVariant::cifar10;
    const std::size_t other_rec = std::size_t(cifar_record_bytes(other));
    const std::string other_note =
        size != 0 && size % other_rec == 0
            ? fmt::format(" (it is a multiple of {}, the {} record: wrong loader?)", other_rec,
                          to_string(other))
            : std::string(" (truncated, or not the binary version)");
    throw DataError(file, fmt::format("file size {} bytes is not a positive multiple of the "
                                      "{}-byte {} record ({} label byte{} + {} pixels){}",
                                      size, rec, to_string(v), rec - cifar_pixels,
                                      rec - cifar_pixels == 1 ? "" : "s", cifar_pixels,
                                      other_note));
  }
  std::vector<unsigned char> bytes(size);
  std::ifstream in(path, std::ios::binary);
  if (!in.read(reinterpret_cast<char*>(bytes.data()), std::streamsize(size)))
    throw DataError(file, fmt::format("read failed after byte {} of {}", in.gcount(), size));

  const std::size_t n = size / rec, base = d.labels.size();
  const std::vector<LabelField> fields = label_fields(v);
  d.labels.resize(base + n);
  if (v == CifarVariant::cifar100) d.coarse_labels.resize(base + n);
  d.images.resize((base + n) * cifar_pixels);
  for (std::size_t r = 0; r < n; ++r) {
    const unsigned char* record = bytes.data() + r * rec;
    for (const LabelField& f : fields) {
      const int y = record[f.offset];
      if (y >= f.classes)
        throw DataError(file, fmt::format("record {} (byte {}): {} {}, expected 0..{}", r,
                                          r * rec + std::size_t(f.offset), f.name, y,
                                          f.classes - 1));
    }
    // The last field is the one trained on (CIFAR-100: fine); CIFAR-100's first is coarse.
    d.labels[base + r] = record[fields.back().offset];
    if (v == CifarVariant::cifar100) d.coarse_labels[base + r] = record[0];
    const unsigned char* px = record + (rec - cifar_pixels);
    float* out = d.images.data() + (base + r) * cifar_pixels;
    for (int k = 0; k < cifar_pixels; ++k) out[k] = float(px[k]) / 255.0f;
  }
}

// `dir` itself, or its `sub` folder when the files are there (the archive's own layout).
fs::path resolve_dir(const fs::path& dir, const char* sub, const char* probe) {
  std::error_code ec;
  if (!fs::is_regular_file(dir / probe, ec) && fs::is_regular_file(dir / sub / probe, ec))
    return dir / sub;
  return dir;
}

}  // namespace

std::string to_string(CifarVariant v) {
  switch (v) {
    case CifarVariant::cifar10: return "CIFAR-10";
    case CifarVariant::cifar100: return "CIFAR-100";
  }
  throw InternalError("to_string(CifarVariant): unknown value " + std::to_string(int(v)));
}

int cifar_record_bytes(CifarVariant v) {
  switch (v) {  // label bytes: CIFAR-10 one, CIFAR-100 coarse and fine
    case CifarVariant::cifar10: return cifar_pixels + 1;
    case CifarVariant::cifar100: return cifar_pixels + 2;
  }
  throw InternalError("cifar_record_bytes: unknown variant " + std::to_string(int(v)));
}

Dataset read_cifar_files(std::span<const fs::path> files, CifarVariant v, std::string name) {
  Dataset d;
  d.name = std::move(name);
  d.channels = 3;
  d.height = 32;
  d.width = 32;
  d.num_classes = v == CifarVariant::cifar10 ? 10 : 100;
  for (const fs::path& f : files) {
    append_file(f, v, d);
    d.source += (d.source.empty() ? "" : " + ") + f.string();
  }
  d.validate();
  return d;
}

Dataset load_cifar10(Split split, const fs::path& dir) {
  const fs::path root = resolve_dir(dir, "cifar-10-batches-bin", "test_batch.bin");
  std::vector<fs::path> files;
  if (split == Split::train)
    for (int b = 1; b <= 5; ++b) files.push_back(root / fmt::format("data_batch_{}.bin", b));
  else
    files.push_back(root / "test_batch.bin");
  Dataset d = read_cifar_files(files, CifarVariant::cifar10, "cifar10/" + to_string(split));
  d.source = root.string();
  return d;
}

Dataset load_cifar100(Split split, const fs::path& dir) {
  const fs::path root = resolve_dir(dir, "cifar-100-binary", "test.bin");
  const std::vector<fs::path> files{root / (split == Split::train ? "train.bin" : "test.bin")};
  Dataset d = read_cifar_files(files, CifarVariant::cifar100, "cifar100/" + to_string(split));
  d.source = root.string();
  return d;
}

}  // namespace wdlab::data

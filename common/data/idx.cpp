#include "common/data/idx.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string_view>
#include <system_error>
#include <utility>

#include <fmt/format.h>
#include <zlib.h>

#include "common/errors.hpp"

namespace wdlab::data {
namespace fs = std::filesystem;

namespace {

constexpr std::size_t chunk_bytes = std::size_t(1) << 20;
// Caps each side so N·rows·cols cannot overflow 64 bits (N < 2^32, rows·cols ≤ 2^32).
constexpr std::uint32_t max_side = 65536;

// A gzFile reading raw or gzip input alike (zlib's transparent mode), tracking the uncompressed
// byte offset so every error can say where it happened. Owns the handle (neither copied nor moved).
class IdxReader {
 public:
  enum class Encoding { raw, gzip };

  explicit IdxReader(const fs::path& path) : path_(path.string()) {
    std::error_code ec;
    if (!fs::is_regular_file(path, ec))
      throw DataError(path_, "file not found (or not a regular file)");
    file_ = gzopen(path_.c_str(), "rb");
    if (!file_) throw DataError(path_, fmt::format("cannot open: {}", std::strerror(errno)));
    gzbuffer(file_, 1u << 17);
    // Called right after gzopen, gzdirect peeks at the first bytes: gzip magic or not.
    encoding_ = gzdirect(file_) == 1 ? Encoding::raw : Encoding::gzip;
    if (encoding_ == Encoding::raw) {
      raw_size_ = fs::file_size(path, ec);
      if (ec) throw DataError(path_, "cannot read its size: " + ec.message());
    }
  }
  ~IdxReader() {
    if (file_) gzclose(file_);
  }
  IdxReader(const IdxReader&) = delete;
  IdxReader& operator=(const IdxReader&) = delete;

  const std::string& path() const { return path_; }

  /// Reads exactly n bytes of `what`; `promise` says how many bytes the file should hold in all,
  /// for the truncation message.
  void read_exact(std::uint8_t* dst, std::size_t n, std::string_view what,
                  std::string_view promise) {
    const std::uint64_t start = offset_;
    std::size_t done = 0;
    while (done < n) {
      const unsigned want = unsigned(std::min(n - done, chunk_bytes));
      const int got = gzread(file_, dst + done, want);
      check_zlib(what, promise, got < 0);
      if (got <= 0) break;
      done += std::size_t(got);
      offset_ += std::uint64_t(got);
    }
    if (done < n)
      throw DataError(path_, fmt::format("byte {}: file ends after {} {}bytes, {} bytes into {} "
                                         "at byte {}; expected {}: {}",
                                         offset_, offset_, encoding_ == Encoding::raw ? "" : "uncompressed ", done,
                                         what, start, promise, truncation()));
  }

  std::uint32_t read_be32(std::string_view what, std::string_view promise) {
    std::uint8_t b[4];
    read_exact(b, 4, what, promise);
    return (std::uint32_t(b[0]) << 24) | (std::uint32_t(b[1]) << 16) |
           (std::uint32_t(b[2]) << 8) | std::uint32_t(b[3]);
  }

  /// Raw files: compare the size on disk with the header's promise before reading the payload,
  /// so the message gives both sizes. (A .gz's uncompressed size is only known by reading it.)
  void check_raw_size(std::uint64_t total, std::string_view promise) const {
    if (encoding_ == Encoding::raw && raw_size_ != total)
      throw DataError(path_, fmt::format("byte {}: file is {} bytes, expected {} ({}): {}",
                                         std::min(raw_size_, total), raw_size_, total, promise,
                                         raw_size_ < total ? "truncated" : "trailing bytes"));
  }

  /// After the promised bytes: nothing may follow, and for a .gz the trailer (CRC, length) must
  /// be whole and check out, which zlib verifies only when asked to read past the data.
  void expect_end(std::string_view promise) {
    std::uint8_t extra = 0;
    const int got = gzread(file_, &extra, 1);
    check_zlib("the end of the data", promise, got < 0);
    if (got > 0)
      throw DataError(path_, fmt::format("byte {}: data continues past the {} bytes expected "
                                         "({}); expected end of file",
                                         offset_, offset_, promise));
    if (zlib_status().first == Z_BUF_ERROR)
      throw DataError(path_, fmt::format("byte {}: all {} bytes expected ({}) decoded, but the "
                                         "gzip trailer (CRC and length) is missing: {}",
                                         offset_, offset_, promise, truncation()));
  }

 private:
  // zlib's error code and message, the message without the file name gzerror puts in front.
  std::pair<int, std::string> zlib_status() const {
    int err = Z_OK;
    const char* msg = gzerror(file_, &err);
    std::string text = msg ? msg : "";
    if (text.rfind(path_ + ": ", 0) == 0) text.erase(0, path_.size() + 2);
    return {err, text};
  }

  // A truncated .gz reads as a short, clean-looking end of file unless gzerror is consulted:
  // zlib flags it as Z_BUF_ERROR ("unexpected end of file").
  std::string truncation() const {
    const auto [err, text] = zlib_status();
    if (err == Z_BUF_ERROR) return "truncated .gz (zlib: " + text + ")";
    return "truncated";
  }

  // Hard errors (corrupt data, I/O). Z_BUF_ERROR is not one: zlib sets it as soon as the input
  // runs out, possibly while output is still buffered, so shortness is judged by bytes delivered.
  void check_zlib(std::string_view what, std::string_view promise, bool read_failed) const {
    const auto [err, text] = zlib_status();
    if (!read_failed && (err == Z_OK || err == Z_BUF_ERROR)) return;
    const std::string detail = err == Z_ERRNO ? std::string(std::strerror(errno)) : text;
    // zlib decodes ahead of what we consume, so the fault may lie past this offset.
    throw DataError(path_, fmt::format("byte {}: {} while reading {} (zlib: {}); expected {}",
                                       offset_, encoding_ == Encoding::raw ? "read error" : "corrupt gzip data", what,
                                       detail, promise));
  }

  std::string path_;
  gzFile file_ = nullptr;
  Encoding encoding_ = Encoding::raw;
  std::uintmax_t raw_size_ = 0;
  std::uint64_t offset_ = 0;
};

std::string magic_name(std::uint32_t magic) {
  return magic == idx_magic_images_u8 ? "idx3 u8 images" : "idx1 u8 labels";
}

void check_magic(IdxReader& in, std::uint32_t expected) {
  const std::uint32_t magic = in.read_be32("the magic number", "a 4-byte magic number");
  if (magic != expected)
    throw DataError(in.path(), fmt::format("byte 0: magic 0x{:08x}, expected 0x{:08x} ({})", magic,
                                           expected, magic_name(expected)));
}

std::uint32_t check_side(const IdxReader& in, std::uint32_t value, std::uint32_t expected,
                         int byte, const char* field) {
  if (expected != 0 && value != expected)
    throw DataError(in.path(), fmt::format("byte {}: {} {}, expected {}", byte, field, value,
                                           expected));
  if (value == 0 || value > max_side)
    throw DataError(in.path(), fmt::format("byte {}: {} {}, expected 1..{}", byte, field, value,
                                           max_side));
  return value;
}

// Finds `base` or `base.gz` in `dir`; the hint says where such files normally come from.
fs::path find_idx(const fs::path& dir, const std::string& base, std::string_view hint) {
  std::error_code ec;
  for (const fs::path& p : {dir / base, dir / (base + ".gz")})
    if (fs::is_regular_file(p, ec)) return p;
  throw DataError((dir / base).string() + "[.gz]", fmt::format("not found; {}", hint));
}

struct IdxNames {
  std::string images, labels;
};

IdxNames idx_names(Split split) {
  const std::string prefix = split == Split::train ? "train" : "t10k";
  return {prefix + "-images-idx3-ubyte", prefix + "-labels-idx1-ubyte"};
}

Dataset load_mnist_like(Split split, const fs::path& dir, const std::string& set_name,
                        std::string_view hint) {
  const IdxNames names = idx_names(split);
  const fs::path images = find_idx(dir, names.images, hint);
  const fs::path labels = find_idx(dir, names.labels, hint);
  Dataset d = load_idx_pair(images, labels, 10, IdxShape{28, 28}, set_name + "/" + to_string(split));
  d.source = dir.string();
  return d;
}

}  // namespace

IdxImages read_idx_images(const fs::path& path, IdxShape expect) {
  IdxReader in(path);
  check_magic(in, idx_magic_images_u8);
  const std::string header = "a 16-byte idx3 header";
  IdxImages out;
  out.count = in.read_be32("the count", header);
  if (out.count == 0) throw DataError(in.path(), "byte 4: count 0, expected ≥ 1 image");
  out.rows = check_side(in, in.read_be32("rows", header), expect.rows, 8, "rows");
  out.cols = check_side(in, in.read_be32("cols", header), expect.cols, 12, "cols");
  const std::uint64_t n = std::uint64_t(out.count) * out.rows * out.cols;
  const std::string promise =
      fmt::format("16 + {}×{}×{} = {} bytes, as the header says", out.count, out.rows, out.cols,
                  16 + n);
  in.check_raw_size(16 + n, promise);
  // Grow while reading: a corrupt .gz header must not make us allocate what it claims up front.
  std::size_t done = 0;
  while (done < n) {
    const std::size_t step = std::size_t(std::min<std::uint64_t>(n - done, 64 * chunk_bytes));
    out.pixels.resize(done + step);
    in.read_exact(out.pixels.data() + done, step, "the pixels", promise);
    done += step;
  }
  in.expect_end(promise);
  return out;
}

std::vector<std::uint8_t> read_idx_labels(const fs::path& path) {
  IdxReader in(path);
  check_magic(in, idx_magic_labels_u8);
  const std::uint32_t count = in.read_be32("the count", "an 8-byte idx1 header");
  if (count == 0) throw DataError(in.path(), "byte 4: count 0, expected ≥ 1 label");
  const std::string promise = fmt::format("8 + {} = {} bytes, as the header says", count,
                                          8 + std::uint64_t(count));
  in.check_raw_size(8 + std::uint64_t(count), promise);
  std::vector<std::uint8_t> labels;
  std::size_t done = 0;
  while (done < count) {
    const std::size_t step = std::min<std::size_t>(count - done, 64 * chunk_bytes);
    labels.resize(done + step);
    in.read_exact(labels.data() + done, step, "the labels", promise);
    done += step;
  }
  in.expect_end(promise);
  return labels;
}

Dataset load_idx_pair(const fs::path& images_path, const fs::path& labels_path, int num_classes,
                      IdxShape expect, std::string name) {
  if (num_classes < 1 || num_classes > 256)
    throw UsageError("num_classes", fmt::format("{}, expected 1..256 (u8 labels)", num_classes));
  const IdxImages img = read_idx_images(images_path, expect);
  const std::vector<std::uint8_t> lab = read_idx_labels(labels_path);
  if (lab.size() != img.count)
    throw DataError(labels_path.string(),
                    fmt::format("byte 4: count {}, expected {} (the image count in {})",
                                lab.size(), img.count, images_path.string()));
  Dataset d;
  d.name = std::move(name);
  d.source = images_path.string() + " + " + labels_path.string();
  d.channels = 1;
  d.height = int(img.rows);
  d.width = int(img.cols);
  d.num_classes = num_classes;
  d.labels.resize(lab.size());
  for (std::size_t i = 0; i < lab.size(); ++i) {
    if (lab[i] >= num_classes)
      throw DataError(labels_path.string(),
                      fmt::format("byte {}: label {} of example {}, expected 0..{}", 8 + i, lab[i],
                                  i, num_classes - 1));
    d.labels[i] = lab[i];
  }
  d.images.resize(img.pixels.size());
  for (std::size_t i = 0; i < img.pixels.size(); ++i) d.images[i] = float(img.pixels[i]) / 255.0f;
  d.validate();
  return d;
}

fs::path fashion_mnist_dir() {
  // Read on each call rather than cached: no hidden state, and tests can set it.
  if (const char* env = std::getenv("WDLAB_FASHION_MNIST_DIR"); env && *env) return fs::path(env);
  return fs::path("/usr/share/datasets/fashion-mnist");
}

Dataset load_fashion_mnist(Split split, const fs::path& dir) {
  return load_mnist_like(split, dir, "fashion-mnist",
                         "Fashion-MNIST ships in the Debian package dataset-fashion-mnist "
                         "(apt-get install dataset-fashion-mnist, files in "
                         "/usr/share/datasets/fashion-mnist), or set WDLAB_FASHION_MNIST_DIR");
}

Dataset load_mnist(Split split, const fs::path& dir) {
  return load_mnist_like(split, dir, "mnist",
                         "MNIST is not bundled: put the idx files (raw or .gz) in the directory "
                         "given; for the bundled default use Fashion-MNIST (Debian package "
                         "dataset-fashion-mnist)");
}

}  // namespace wdlab::data

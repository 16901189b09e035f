#pragma once
#include "../support/temp_dir.hpp"
// Helpers for the data tests: a private temporary directory, writers for raw and gzip files and
// for IDX/CIFAR content, and a way to catch a typed error's message for substring checks.
#include <unistd.h>
#include <zlib.h>

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <doctest/doctest.h>

namespace wdlab::test {

using Bytes = std::vector<std::uint8_t>;


inline void write_raw(const std::filesystem::path& p, const Bytes& b) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(b.data()), std::streamsize(b.size()));
  if (!out) throw std::runtime_error("test helper: cannot write " + p.string());
}

inline Bytes read_raw(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

/// Compresses with zlib's gzwrite, as gzip(1) would.
inline void write_gz(const std::filesystem::path& p, const Bytes& b) {
  gzFile f = gzopen(p.string().c_str(), "wb9");
  if (!f) throw std::runtime_error("test helper: gzopen failed for " + p.string());
  const int wrote = b.empty() ? 0 : gzwrite(f, b.data(), unsigned(b.size()));
  const int closed = gzclose(f);
  if (wrote != int(b.size()) || closed != Z_OK)
    throw std::runtime_error("test helper: gzwrite failed for " + p.string());
}

inline void put_be32(Bytes& b, std::uint32_t v) {
  for (int k = 3; k >= 0; --k) b.push_back(std::uint8_t(v >> (8 * k)));
}

/// An idx3 u8 file: magic, n, rows, cols, then pixel (i, y, x) = (7·i + 3·y + x) mod 256.
inline Bytes idx_images(std::uint32_t n, std::uint32_t rows, std::uint32_t cols,
                        std::uint32_t magic = 0x00000803) {
  Bytes b;
  put_be32(b, magic);
  put_be32(b, n);
  put_be32(b, rows);
  put_be32(b, cols);
  for (std::uint32_t i = 0; i < n; ++i)
    for (std::uint32_t y = 0; y < rows; ++y)
      for (std::uint32_t x = 0; x < cols; ++x) b.push_back(std::uint8_t((7 * i + 3 * y + x) % 256));
  return b;
}

inline Bytes idx_labels(const Bytes& labels, std::uint32_t magic = 0x00000801) {
  Bytes b;
  put_be32(b, magic);
  put_be32(b, std::uint32_t(labels.size()));
  b.insert(b.end(), labels.begin(), labels.end());
  return b;
}

/// CIFAR records: the label bytes given per record, then 3072 pixels, pixel k = (r + k) mod 256.
inline Bytes cifar_records(const std::vector<Bytes>& label_bytes) {
  Bytes b;
  for (std::size_t r = 0; r < label_bytes.size(); ++r) {
    b.insert(b.end(), label_bytes[r].begin(), label_bytes[r].end());
    for (int k = 0; k < 3072; ++k) b.push_back(std::uint8_t((r + std::size_t(k)) % 256));
  }
  return b;
}

/// The message of the E thrown by f(), or "<no exception>". Another exception type propagates,
/// so the test fails loudly rather than matching the wrong error.
template <class E, class F>
std::string message_of(F&& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  }
  return "<no exception>";
}

inline bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

}  // namespace wdlab::test

/// CHECK that an error message contains `part`, printing the whole message when it does not.
#define CHECK_HAS(msg, part)                                                                   \
  CHECK_MESSAGE(::wdlab::test::contains((msg), (part)),                                        \
                (std::string("message: ") + (msg) + "\n  lacks: " + (part)))

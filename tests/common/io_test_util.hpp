#pragma once
#include "../support/temp_dir.hpp"
// Helpers for the test_io suite: a private temporary directory, byte-string builders, and a way
// to catch a typed error's message for substring checks.
#include <stdlib.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <doctest/doctest.h>

namespace wdlab::iotest {

using wdlab::test::TempDir;

inline std::vector<std::byte> bytes_of(std::string_view s) {
  const auto* p = reinterpret_cast<const std::byte*>(s.data());
  return {p, p + s.size()};
}

inline std::string string_of(const std::vector<std::byte>& b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

inline std::string read_text(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) throw std::runtime_error("test helper: cannot read " + p.string());
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

inline void write_text(const std::filesystem::path& p, std::string_view s) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(s.data(), std::streamsize(s.size()));
  if (!out) throw std::runtime_error("test helper: cannot write " + p.string());
}

/// Little-endian u64, as 8 chars.
inline std::string le64(std::uint64_t n) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = static_cast<char>((n >> (8 * i)) & 0xFF);
  return s;
}

/// A safetensors file from a literal header and data, no padding: for malformed inputs.
inline std::vector<std::byte> raw_file(std::string_view header, std::string_view data) {
  return bytes_of(le64(header.size()) + std::string(header) + std::string(data));
}

/// Runs `f`, which must throw `E`; returns what() ("" and a failed check when it does not).
template <class E, class F>
std::string message_of(F&& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  }
  FAIL_CHECK("expected exception was not thrown");
  return "";
}

}  // namespace wdlab::iotest

#pragma once
// FNV-1a (64-bit): the one content hash of the project (dataset identity, config identity,
// sweep run ids). Not cryptographic: it detects accidental change, which is all these need.
// Bytes are fed in a fixed little-endian order so a hash is the same on any host.
#include <cstdint>
#include <string>
#include <string_view>

#include <fmt/format.h>

namespace wdlab {

class Fnv1a {
 public:
  void byte(std::uint8_t b) {
    h_ ^= b;
    h_ *= 0x100000001b3ull;  // the 64-bit FNV prime
  }
  void bytes(std::string_view s) {
    for (const unsigned char c : s) byte(c);
  }
  void u32(std::uint32_t v) {
    for (int k = 0; k < 4; ++k) byte(std::uint8_t(v >> (8 * k)));
  }
  void u64(std::uint64_t v) {
    for (int k = 0; k < 8; ++k) byte(std::uint8_t(v >> (8 * k)));
  }
  std::uint64_t value() const { return h_; }

 private:
  std::uint64_t h_ = 0xcbf29ce484222325ull;  // the 64-bit offset basis
};

inline std::uint64_t fnv1a(std::string_view s) {
  Fnv1a h;
  h.bytes(s);
  return h.value();
}

/// 16 lower-case hex digits.
inline std::string fnv1a_hex(std::string_view s) { return fmt::format("{:016x}", fnv1a(s)); }

}  // namespace wdlab

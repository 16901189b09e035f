#pragma once
// Internal to common/io: one strict JSON parse for both the safetensors header and config files.
// nlohmann keeps the last of duplicate keys silently; a checkpoint with two tensors of one name,
// or a config that sets `lr` twice, is ambiguous and is rejected here instead.
#include <cstddef>
#include <stdexcept>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace wdlab::io::detail {

/// A syntax-level problem; the caller turns it into a DataError in its own terms
/// (byte offset for binary files, line/column for text files).
struct JsonSyntaxError : std::runtime_error {
  static constexpr std::size_t npos = static_cast<std::size_t>(-1);
  JsonSyntaxError(std::size_t byte_offset, const std::string& what)
      : std::runtime_error(what), byte(byte_offset) {}
  std::size_t byte;  // 0-based offset into the parsed text, or npos when not known
};

/// Parses exactly one JSON value (trailing whitespace allowed). Rejects invalid UTF-8, duplicate
/// object keys, and containers nested deeper than `max_depth` (the top-level value is depth 1).
nlohmann::json parse_json_strict(std::string_view text, int max_depth);

/// "line L, column C" of a 0-based byte offset, both 1-based, columns counted in bytes.
std::string line_column(std::string_view text, std::size_t byte);

/// A value for an error message: its JSON text, cut to `max_chars` with "..." when longer.
std::string json_excerpt(const nlohmann::json& value, std::size_t max_chars = 60);

/// "string", "number", "array", ... with an article-free name, for "expected X, got Y" messages.
std::string json_type_name(const nlohmann::json& value);

}  // namespace wdlab::io::detail

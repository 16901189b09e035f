#include "common/io/json_strict.hpp"

#include <set>
#include <vector>

namespace wdlab::io::detail {
namespace {

// nlohmann's what() is "[json.exception.parse_error.101] parse error at line 1, column 9: <why>";
// the caller prints its own location, so keep only <why>.
std::string strip_nlohmann_prefix(std::string msg) {
  if (const auto p = msg.find("] "); p != std::string::npos && msg.starts_with("[json.exception"))
    msg.erase(0, p + 2);
  if (msg.starts_with("parse error")) {
    if (const auto p = msg.find(": "); p != std::string::npos) msg.erase(0, p + 2);
  }
  return msg;
}

}  // namespace

nlohmann::json parse_json_strict(std::string_view text, int max_depth) {
  using json = nlohmann::json;
  // One key set and one key per open container, to detect duplicates and to name the path.
  std::vector<std::set<std::string>> keys;
  std::vector<std::string> path;
  const auto where = [&path] {
    std::string s;
    for (const auto& k : path) s += (s.empty() ? "" : ".") + k;
    return s.empty() ? std::string("top level") : "\"" + s + "\"";
  };
  const json::parser_callback_t check = [&](int depth, json::parse_event_t ev, json& parsed) {
    switch (ev) {
      case json::parse_event_t::object_start:
      case json::parse_event_t::array_start:
        // depth is that of the enclosing container, so this one sits at depth + 1.
        if (depth + 1 > max_depth)
          throw JsonSyntaxError(
              JsonSyntaxError::npos,
              "nesting deeper than " + std::to_string(max_depth) + " at " + where());
        keys.emplace_back();
        path.emplace_back(ev == json::parse_event_t::array_start ? "[]" : "");
        break;
      case json::parse_event_t::key: {
        const auto& k = parsed.get_ref<const std::string&>();
        path.back() = k;
        if (!keys.back().insert(k).second)
          throw JsonSyntaxError(JsonSyntaxError::npos, "duplicate key " + where());
        break;
      }
      case json::parse_event_t::object_end:
      case json::parse_event_t::array_end:
        keys.pop_back();
        path.pop_back();
        break;
      case json::parse_event_t::value:
        break;
    }
    return true;
  };
  try {
    return json::parse(text.begin(), text.end(), check, /*allow_exceptions=*/true,
                       /*ignore_comments=*/false);
  } catch (const json::parse_error& e) {
    throw JsonSyntaxError(e.byte > 0 ? e.byte - 1 : 0, strip_nlohmann_prefix(e.what()));
  } catch (const json::exception& e) {
    // e.g. out_of_range 406 for a number like 1e999; nlohmann gives no position for these.
    throw JsonSyntaxError(JsonSyntaxError::npos, strip_nlohmann_prefix(e.what()));
  }
}

std::string line_column(std::string_view text, std::size_t byte) {
  if (byte > text.size()) byte = text.size();
  std::size_t line = 1, line_start = 0;
  for (std::size_t i = 0; i < byte; ++i) {
    if (text[i] == '\n') {
      ++line;
      line_start = i + 1;
    }
  }
  return "line " + std::to_string(line) + ", column " + std::to_string(byte - line_start + 1);
}

std::string json_excerpt(const nlohmann::json& value, std::size_t max_chars) {
  // `replace` keeps a message printable even for a string holding invalid UTF-8.
  std::string s = value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  if (s.size() > max_chars) {
    std::size_t cut = max_chars;
    while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;  // UTF-8 boundary
    s = s.substr(0, cut) + "...";
  }
  return s;
}

std::string json_type_name(const nlohmann::json& value) {
  switch (value.type()) {
    case nlohmann::json::value_t::number_integer:
    case nlohmann::json::value_t::number_unsigned:
      return "integer";
    case nlohmann::json::value_t::number_float:
      return "number";
    default:
      return value.type_name();
  }
}

}  // namespace wdlab::io::detail

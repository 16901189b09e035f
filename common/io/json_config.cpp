#include "common/io/json_config.hpp"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "common/errors.hpp"
#include "common/io/json_strict.hpp"
#include "common/io/read_file.hpp"

namespace wdlab::io {
namespace {

using json = nlohmann::json;

// Deep enough for any config; shallow enough that a hostile file cannot exhaust the stack of
// code that walks the result recursively.
constexpr int kMaxConfigDepth = 64;

std::string got(const json& v) {
  return fmt::format("got {} {}", detail::json_type_name(v), detail::json_excerpt(v));
}

[[noreturn]] void wrong_type(const std::string& path, std::string_view expected, const json& v) {
  throw UsageError(path, fmt::format("expected {}, {}", expected, got(v)));
}

void check_bounds(const std::string& path, double x, const Bounds& b) {
  if (!b.contains(x)) throw UsageError(path, fmt::format("expected {}, got {}", b.describe(), x));
}

template <class Int>
Int to_integer(const json& v, const std::string& path, const Bounds& b) {
  constexpr bool is_unsigned = std::is_unsigned_v<Int>;
  const char* expected = is_unsigned ? "a non-negative integer" : "an integer";
  if (v.is_number_unsigned()) {
    const auto u = v.get<std::uint64_t>();
    if (u > static_cast<std::uint64_t>(std::numeric_limits<Int>::max()))
      throw UsageError(
          path, fmt::format("{} is too large (at most {})", u, std::numeric_limits<Int>::max()));
    check_bounds(path, static_cast<double>(u), b);
    return static_cast<Int>(u);
  }
  // A JSON integer built in code (nlohmann's number_integer) is signed even when it is 7: a
  // non-negative one is as good as the unsigned number the parser makes of the text "7".
  if (v.is_number_integer() && (!is_unsigned || v.get<std::int64_t>() >= 0)) {
    const auto s = v.get<std::int64_t>();
    if constexpr (is_unsigned) {
      if (static_cast<std::uint64_t>(s) > static_cast<std::uint64_t>(std::numeric_limits<Int>::max()))
        throw UsageError(path, fmt::format("{} is too large (at most {})", s, std::numeric_limits<Int>::max()));
      check_bounds(path, static_cast<double>(s), b);
      return static_cast<Int>(s);
    }
    if (s < static_cast<std::int64_t>(std::numeric_limits<Int>::min()))
      throw UsageError(
          path, fmt::format("{} is too small (at least {})", s, std::numeric_limits<Int>::min()));
    if (s > static_cast<std::int64_t>(std::numeric_limits<Int>::max()))  // a signed value built in code
      throw UsageError(path, fmt::format("{} is too large (at most {})", s, std::numeric_limits<Int>::max()));
    check_bounds(path, static_cast<double>(s), b);
    return static_cast<Int>(s);
  }
  wrong_type(path, expected, v);
}

template <class T>
T convert(const json& v, const std::string& path, const Bounds& b);

template <class Elem>
std::vector<Elem> to_vector(const json& v, const std::string& path, const Bounds& b,
                            std::string_view expected) {
  if (!v.is_array()) wrong_type(path, expected, v);
  std::vector<Elem> out;
  out.reserve(v.size());
  for (std::size_t i = 0; i < v.size(); ++i)
    out.push_back(convert<Elem>(v[i], fmt::format("{}[{}]", path, i), b));
  return out;
}

template <class T>
T convert(const json& v, const std::string& path, const Bounds& b) {
  if constexpr (std::is_same_v<T, bool>) {
    if (!v.is_boolean()) wrong_type(path, "true or false", v);
    return v.get<bool>();
  } else if constexpr (std::is_integral_v<T>) {
    return to_integer<T>(v, path, b);
  } else if constexpr (std::is_floating_point_v<T>) {
    if (!v.is_number()) wrong_type(path, "a number", v);
    const double x = v.get<double>();
    if (std::is_same_v<T, float> && std::abs(x) > std::numeric_limits<float>::max())
      throw UsageError(path, fmt::format("{} does not fit a 32-bit float", x));
    check_bounds(path, x, b);
    return static_cast<T>(x);
  } else if constexpr (std::is_same_v<T, std::string>) {
    if (!v.is_string()) wrong_type(path, "a string", v);
    return v.get<std::string>();
  } else if constexpr (std::is_same_v<T, std::vector<int>>) {
    return to_vector<int>(v, path, b, "an array of integers");
  } else if constexpr (std::is_same_v<T, std::vector<double>>) {
    return to_vector<double>(v, path, b, "an array of numbers");
  } else {
    static_assert(std::is_same_v<T, std::vector<std::string>>, "unsupported config value type");
    return to_vector<std::string>(v, path, b, "an array of strings");
  }
}

std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diag = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] != b[j - 1])});
      diag = up;
    }
  }
  return row[b.size()];
}

std::string join(const std::vector<std::string>& items) {
  return fmt::format("{}", fmt::join(items, ", "));
}

}  // namespace

// --- files and overrides -----------------------------------------------------------------------

json parse_json_text(std::string_view text, const std::string& source) {
  try {
    return detail::parse_json_strict(text, kMaxConfigDepth);
  } catch (const detail::JsonSyntaxError& e) {
    if (e.byte == detail::JsonSyntaxError::npos) throw DataError(source, e.what());
    throw DataError(source, detail::line_column(text, e.byte) + ": " + e.what());
  }
}

json read_json_file(const std::filesystem::path& path) {
  return parse_json_text(read_file_text(path), path.string());
}

void apply_override(json& config, std::string_view assignment) {
  const std::string field = fmt::format("--set {}", assignment);
  const auto eq = assignment.find('=');
  if (eq == std::string_view::npos) throw UsageError(field, "expected key=value");
  const std::string_view key = assignment.substr(0, eq);
  const std::string_view text = assignment.substr(eq + 1);

  std::vector<std::string> segments;
  for (std::size_t start = 0;;) {
    const auto dot = key.find('.', start);
    segments.emplace_back(
        key.substr(start, dot == std::string_view::npos ? key.npos : dot - start));
    if (segments.back().empty())
      throw UsageError(field, fmt::format("empty key segment in \"{}\"", key));
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }

  json value;
  try {
    value = detail::parse_json_strict(text, kMaxConfigDepth);
  } catch (const detail::JsonSyntaxError& e) {
    // Text that starts like JSON was meant as JSON: a typo there must not become a string.
    const auto first = text.find_first_not_of(" \t");
    if (first != std::string_view::npos && std::string_view("[{\"").find(text[first]) != text.npos)
      throw UsageError(field, fmt::format("value is not valid JSON: {}", e.what()));
    value = std::string(text);
  }

  if (config.is_null()) config = json::object();
  if (!config.is_object()) throw UsageError(field, "the config is not a JSON object");
  json* node = &config;
  std::string walked;
  for (std::size_t i = 0; i + 1 < segments.size(); ++i) {
    walked += (walked.empty() ? "" : ".") + segments[i];
    json& next = (*node)[segments[i]];  // creates a null member when absent
    if (next.is_null()) next = json::object();
    if (!next.is_object())
      throw UsageError(
          field, fmt::format("{} is {} {}, not an object", walked, detail::json_type_name(next),
                             detail::json_excerpt(next)));
    node = &next;
  }
  (*node)[segments.back()] = std::move(value);
}

// --- bounds ------------------------------------------------------------------------------------

bool Bounds::contains(double x) const {
  if (std::isnan(x)) return false;
  const bool above = lo_open ? x > lo : x >= lo;
  const bool below = hi_open ? x < hi : x <= hi;
  return above && below;
}

std::string Bounds::describe() const {
  const bool lo_inf = std::isinf(lo), hi_inf = std::isinf(hi);
  if (lo_inf && hi_inf) return "a number";
  if (hi_inf) return fmt::format("a value {} {}", lo_open ? ">" : ">=", lo);
  if (lo_inf) return fmt::format("a value {} {}", hi_open ? "<" : "<=", hi);
  return fmt::format("a value in {}{}, {}{}", lo_open ? "(" : "[", lo, hi, hi_open ? ")" : "]");
}

Bounds any_value() { return {}; }
Bounds positive() { return Bounds{.lo = 0, .lo_open = true}; }
Bounds non_negative() { return Bounds{.lo = 0}; }
Bounds in_range(double lo, double hi) { return Bounds{.lo = lo, .hi = hi}; }
Bounds at_least(double lo) { return Bounds{.lo = lo}; }

// --- reader ------------------------------------------------------------------------------------

ConfigReader::ConfigReader(json object, std::string prefix)
    : object_(std::move(object)), prefix_(std::move(prefix)) {
  if (!object_.is_object())
    throw UsageError(prefix_.empty() ? "config" : prefix_,
                     fmt::format("expected an object, {}", got(object_)));
}

std::string ConfigReader::path(std::string_view key) const {
  return prefix_.empty() ? std::string(key) : fmt::format("{}.{}", prefix_, key);
}

const json* ConfigReader::lookup(std::string_view key) {
  known_.emplace(key);
  const auto it = object_.find(key);
  return it == object_.end() ? nullptr : &*it;
}

bool ConfigReader::has(std::string_view key) { return lookup(key) != nullptr; }

template <class T>
std::optional<T> ConfigReader::get_optional(std::string_view key, Bounds bounds) {
  const json* v = lookup(key);
  if (!v) return std::nullopt;
  return convert<T>(*v, path(key), bounds);
}

template <class T>
T ConfigReader::get(std::string_view key, T default_value, Bounds bounds) {
  auto v = get_optional<T>(key, bounds);
  return v ? std::move(*v) : std::move(default_value);
}

template <class T>
T ConfigReader::require(std::string_view key, Bounds bounds) {
  auto v = get_optional<T>(key, bounds);
  if (!v) throw UsageError(path(key), "required key is missing");
  return std::move(*v);
}

std::string ConfigReader::require_enum(std::string_view key,
                                       std::initializer_list<std::string_view> allowed) {
  const std::string v = require<std::string>(key);
  if (std::find(allowed.begin(), allowed.end(), v) == allowed.end())
    throw UsageError(path(key),
                     fmt::format("expected one of {}, got \"{}\"", fmt::join(allowed, ", "), v));
  return v;
}

std::string ConfigReader::get_enum(std::string_view key,
                                   std::initializer_list<std::string_view> allowed,
                                   std::string_view default_value) {
  if (!has(key)) return std::string(default_value);
  return require_enum(key, allowed);
}

ConfigReader ConfigReader::child(std::string_view key) {
  const json* v = lookup(key);
  if (!v) return ConfigReader(json::object(), path(key));
  if (!v->is_object()) wrong_type(path(key), "an object", *v);
  return ConfigReader(*v, path(key));
}

void ConfigReader::finish() const {
  std::vector<std::string> unknown, hints;
  for (const auto& [key, value] : object_.items()) {
    if (known_.count(key)) continue;
    unknown.push_back(path(key));
    // A near miss is almost always a typo; naming the intended key saves a trip to the docs.
    std::string best;
    std::size_t best_d = 3;
    for (const auto& k : known_) {
      const std::size_t d = edit_distance(key, k);
      if (d < best_d) best_d = d, best = k;
    }
    if (!best.empty()) hints.push_back(fmt::format("\"{}\" → \"{}\"?", key, best));
  }
  if (unknown.empty()) return;
  std::string problem = unknown.size() == 1 ? "unknown key" : "unknown keys";
  if (!hints.empty()) problem += fmt::format(" (did you mean {})", join(hints));
  const std::vector<std::string> known(known_.begin(), known_.end());
  problem +=
      known.empty() ? "; no keys are read here" : fmt::format("; keys read here: {}", join(known));
  throw UsageError(join(unknown), problem);
}

// The value types a config holds; anything else fails to link, loudly.
#define WDLAB_CONFIG_TYPE(T)                                     \
  template T ConfigReader::get<T>(std::string_view, T, Bounds);  \
  template T ConfigReader::require<T>(std::string_view, Bounds); \
  template std::optional<T> ConfigReader::get_optional<T>(std::string_view, Bounds);
WDLAB_CONFIG_TYPE(bool)
WDLAB_CONFIG_TYPE(int)
WDLAB_CONFIG_TYPE(std::int64_t)
WDLAB_CONFIG_TYPE(std::uint64_t)
WDLAB_CONFIG_TYPE(float)
WDLAB_CONFIG_TYPE(double)
WDLAB_CONFIG_TYPE(std::string)
WDLAB_CONFIG_TYPE(std::vector<int>)
WDLAB_CONFIG_TYPE(std::vector<double>)
WDLAB_CONFIG_TYPE(std::vector<std::string>)
#undef WDLAB_CONFIG_TYPE

}  // namespace wdlab::io

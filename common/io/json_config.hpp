#pragma once
// Strict reading of JSON experiment configs (DESIGN.md, "The data flow": config JSON + --set
// overrides → validated ExperimentConfig; unknown keys are errors). A ConfigReader hands out typed
// values for one object, remembers which keys were asked for, and finish() rejects the rest, so a
// misspelt "dampnig" fails the run instead of silently running with the default damping.
#include <cstdint>
#include <filesystem>
#include <initializer_list>
#include <limits>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace wdlab::io {

/// Parses a JSON file. Syntax errors, duplicate keys and invalid UTF-8 are DataError naming the
/// file and "line L, column C".
nlohmann::json read_json_file(const std::filesystem::path& path);

/// Same, for text already in memory; `source` names it in errors.
nlohmann::json parse_json_text(std::string_view text, const std::string& source);

/// Applies one `--set a.b.c=value` override: `value` is parsed as JSON when it parses ("1e-3",
/// "true", "[1,2]", "\"x\""), otherwise taken as a string ("sgd"). Missing intermediate objects are
/// created; whether the key exists is left to the ConfigReader. A malformed assignment (no '=',
/// an empty key segment, a path through a non-object) is a UsageError naming the assignment.
void apply_override(nlohmann::json& config, std::string_view assignment);

/// A numeric constraint; `describe()` is the "expected ..." part of its error message.
struct Bounds {
  double lo = -std::numeric_limits<double>::infinity();
  double hi = std::numeric_limits<double>::infinity();
  bool lo_open = false;  // lo excluded
  bool hi_open = false;  // hi excluded
  bool contains(double x) const;
  std::string describe() const;
};
Bounds any_value();
Bounds positive();                      // (0, ∞)
Bounds non_negative();                  // [0, ∞)
Bounds in_range(double lo, double hi);  // [lo, hi]
Bounds at_least(double lo);             // [lo, ∞)

class ConfigReader {
 public:
  /// `prefix` is this object's key path ("kfac"), used in every message; "" at the top level.
  /// UsageError when `object` is not a JSON object.
  explicit ConfigReader(nlohmann::json object, std::string prefix = "");

  /// Supported T: bool, int, std::int64_t, std::uint64_t, float, double, std::string, and
  /// std::vector of int, double, std::string. Bounds apply to numbers (element-wise for vectors).
  /// Integers must be JSON integers (2.0 is not 2) that fit T; doubles accept integers.
  template <class T>
  T get(std::string_view key, T default_value, Bounds bounds = any_value());
  template <class T>
  T require(std::string_view key, Bounds bounds = any_value());
  template <class T>
  std::optional<T> get_optional(std::string_view key, Bounds bounds = any_value());

  /// A string that must be one of `allowed`; the message lists them.
  std::string get_enum(std::string_view key, std::initializer_list<std::string_view> allowed,
                       std::string_view default_value);
  std::string require_enum(std::string_view key, std::initializer_list<std::string_view> allowed);

  /// A reader for the nested object `key` (an empty object when absent). Its unknown keys are
  /// checked by its own finish().
  ConfigReader child(std::string_view key);

  /// Whether `key` is present; marks it known.
  bool has(std::string_view key);

  /// "kfac.damping" for key "damping" under prefix "kfac".
  std::string path(std::string_view key) const;

  /// UsageError listing every key of this object that no getter asked for.
  void finish() const;

 private:
  const nlohmann::json* lookup(std::string_view key);  // marks known; nullptr when absent

  nlohmann::json object_;
  std::string prefix_;
  std::set<std::string, std::less<>> known_;
};

}  // namespace wdlab::io

#pragma once
// The experiment config's fields, named once. Each entry says its key path (the --set name), how
// it is read from JSON (type, bounds or spellings), how it is written, and one line of help.
// parse_config, ExperimentConfig::to_json and `wdlab train --help` iterate this table, in its
// order (the order of a resolved config.json). Defaults are the member initializers of the config
// structs: a field is read with the value of a default-constructed ExperimentConfig as its
// default, so no default is written here.
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "apps/experiment_config.hpp"
#include "common/io/json_config.hpp"

namespace wdlab::app {

/// always: to_json writes the field. when_changed: only when it differs from its default. A key
/// added after runs were recorded is when_changed, so that a run leaving it at its default
/// resolves to the config.json (and the sweep id) that earlier releases wrote, and resumes.
enum class Record { always, when_changed };

struct ConfigField {
  std::string key;        // "kfac.damping": at most one dot; fields of one object are adjacent
  std::string values;     // what it accepts, for --help: "sgd|adam|...", "> 0", "true|false"
  std::string help;       // one line
  Record record = Record::always;
  std::string default_text;  // --help's default when not write(ExperimentConfig{}) (e.g. computed)
  /// Sets the field from `r` (the reader of the key's object) under the key's last segment,
  /// with the current value as the default. Throws UsageError naming the key path.
  std::function<void(io::ConfigReader& r, const std::string& leaf, ExperimentConfig& c)> read;
  std::function<nlohmann::ordered_json(const ExperimentConfig& c)> write;
};

/// Every field, in the order of a resolved config.
const std::vector<ConfigField>& config_fields();

/// The field named `key` (InternalError when there is none).
const ConfigField& config_field(std::string_view key);

/// One line per field: key, accepted values, default, help (the key list of `wdlab train --help`).
std::string config_keys_help();

}  // namespace wdlab::app

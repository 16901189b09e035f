#include "apps/sweep_grid.hpp"

#include <cstdint>

#include <fmt/format.h>

#include "apps/experiment_config.hpp"
#include "common/errors.hpp"
#include "common/hash.hpp"
#include "common/io/json_config.hpp"

namespace fs = std::filesystem;

namespace wdlab::app {

// Defined in cmd_train.cpp: our JSON for a config file (ours or official) with --set overrides.
nlohmann::json resolve_config_json(const std::string& file, const std::vector<std::string>& sets,
                                   bool print_mapping);

namespace {

/// Flattens {"a": {"b": 1}} to {"a.b": 1}; dotted keys stay as they are.
void flatten(const nlohmann::json& j, const std::string& prefix, nlohmann::ordered_json& out) {
  for (const auto& [k, v] : j.items()) {
    if (v.is_object()) flatten(v, prefix + k + ".", out);
    else out[prefix + k] = v;
  }
}

}  // namespace

std::string config_id(const nlohmann::ordered_json& resolved) {
  nlohmann::ordered_json c = resolved;
  c.erase("name");
  // Keys added later leave the ids of configs that keep their defaults as they were, so a sweep
  // started before them finds its points again (metrics.probe_split train, curvature_bn batch).
  if (c.contains("metrics") && c["metrics"].is_object()) {
    auto& m = c["metrics"];
    if (m.value("probe_split", "") == "train") m.erase("probe_split");
    if (m.value("curvature_bn", "") == "batch") m.erase("curvature_bn");
  }
  return fmt::format("{:016x}", fnv1a(c.dump())).substr(0, 12);
}

std::string describe_overrides(const nlohmann::ordered_json& overrides) {
  std::string s;
  for (const auto& [k, v] : overrides.items())
    s += (s.empty() ? "" : " ") + k + "=" + (v.is_string() ? v.get<std::string>() : v.dump());
  return s;
}

nlohmann::ordered_json resolve_with_overrides(const fs::path& config_file, const nlohmann::json& set_object,
                                              const std::string& where) {
  nlohmann::ordered_json flat;
  flatten(set_object, "", flat);
  std::vector<std::string> sets;
  for (const auto& [k, v] : flat.items()) sets.push_back(k + "=" + v.dump());
  try {
    return parse_config(resolve_config_json(config_file.string(), sets, false)).to_json();
  } catch (const UsageError& e) {
    throw UsageError(where, e.what());
  }
}

Grid read_grid(const fs::path& file) {
  const nlohmann::json j = io::read_json_file(file);
  const std::string f = file.string();
  if (!j.is_object()) throw UsageError(f, "a grid file is a JSON object");
  Grid g;
  g.file = file;
  g.name = file.stem().string();
  for (const auto& [k, v] : j.items()) {
    if (k == "name") {
      if (!v.is_string() || v.get<std::string>().empty()) throw UsageError(f + ": name", "expected a non-empty string");
      g.name = v.get<std::string>();
    } else if (k == "base") {
      if (!v.is_string()) throw UsageError(f + ": base", "expected a config file path");
      g.base = file.parent_path() / v.get<std::string>();
    } else if (k == "set") {
      if (!v.is_object()) throw UsageError(f + ": set", "expected an object of dotted keys");
      flatten(v, "", g.set);
    } else if (k == "axes") {
      if (!v.is_object() || v.empty()) throw UsageError(f + ": axes", "expected a non-empty object");
      for (const auto& [ak, av] : v.items()) {
        if (!av.is_array() || av.empty())
          throw UsageError(f + ": axes." + ak, "expected a non-empty array of values");
        g.axes.push_back({ak, std::vector<nlohmann::json>(av.begin(), av.end())});
      }
    } else if (k == "select") {
      if (v != "val_acc" && v != "val_loss")
        throw UsageError(f + ": select", "expected \"val_acc\" or \"val_loss\"");
      g.select = v.get<std::string>();
    } else if (k == "final") {
      if (!v.is_boolean()) throw UsageError(f + ": final", "expected true or false");
      g.final_retrain = v.get<bool>();
    } else if (k == "comment") {
    } else {
      throw UsageError(f + ": " + k, "unknown key (expected name, base, set, axes, select, final, comment)");
    }
  }
  if (g.base.empty()) throw UsageError(f + ": base", "is required");
  if (g.axes.empty()) throw UsageError(f + ": axes", "is required");
  return g;
}

std::vector<GridPoint> expand_grid(const Grid& g) {
  std::vector<GridPoint> points;
  std::vector<std::size_t> at(g.axes.size(), 0);
  const std::string f = g.file.string();
  while (true) {
    nlohmann::ordered_json overrides, set = g.set;
    for (std::size_t a = 0; a < g.axes.size(); ++a) {
      const auto& [key, values] = g.axes[a];
      const auto& v = values[at[a]];
      if (v.is_object()) {
        nlohmann::ordered_json flat;
        flatten(v, "", flat);
        for (const auto& [k2, v2] : flat.items()) overrides[k2] = set[k2] = v2;
      } else {
        overrides[key] = set[key] = v;
      }
    }
    GridPoint p;
    p.overrides = overrides;
    p.config = resolve_with_overrides(g.base, set, f + ": point " + describe_overrides(overrides));
    p.id = config_id(p.config);
    p.config["name"] = g.name + "-" + p.id;
    bool dup = false;
    for (const auto& q : points) dup |= q.id == p.id;
    if (!dup) points.push_back(std::move(p));
    std::size_t a = g.axes.size();
    while (a > 0) {
      --a;
      if (++at[a] < g.axes[a].second.size()) break;
      at[a] = 0;
      if (a == 0) return points;
    }
    if (g.axes.empty()) return points;
  }
}

nlohmann::ordered_json final_config(const Grid& g, const nlohmann::ordered_json& best) {
  nlohmann::ordered_json c = best;
  c["validation"] = 0;
  c["name"] = g.name + "-final";
  return c;
}

}  // namespace wdlab::app

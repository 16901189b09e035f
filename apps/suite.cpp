#include "apps/suite.hpp"

#include <set>

#include <fmt/format.h>

#include "common/errors.hpp"
#include "common/io/json_config.hpp"

namespace fs = std::filesystem;

namespace wdlab::app {

namespace {

std::string req_string(const nlohmann::json& j, const std::string& key, const std::string& where) {
  if (!j.contains(key) || !j[key].is_string() || j[key].get<std::string>().empty())
    throw UsageError(where + "." + key, "expected a non-empty string");
  return j[key].get<std::string>();
}

void only_keys(const nlohmann::json& j, std::initializer_list<const char*> keys, const std::string& where) {
  if (!j.is_object()) throw UsageError(where, "expected an object");
  for (const auto& [k, v] : j.items()) {
    bool ok = false;
    for (const char* a : keys) ok |= k == a;
    if (!ok) throw UsageError(where + "." + k, "unknown key");
  }
}

bool mentions(const nlohmann::json& j, const std::string& token) {
  if (j.is_string()) return j.get<std::string>().find(token) != std::string::npos;
  if (j.is_object() || j.is_array())
    for (const auto& v : j) if (mentions(v, token)) return true;
  return false;
}

/// One entry of "runs": one run, or one per seed of its "seeds" (suite.hpp).
std::vector<SuiteRun> read_runs(const nlohmann::json& r, const fs::path& file, const std::string& rw) {
  only_keys(r, {"name", "config", "set", "after", "seeds", "comment"}, rw);
  SuiteRun run;
  run.name = req_string(r, "name", rw);
  run.config = file.parent_path() / req_string(r, "config", rw);
  if (r.contains("set")) {
    if (!r["set"].is_object()) throw UsageError(rw + ".set", "expected an object");
    run.set = r["set"];
  }
  if (r.contains("after") && !r["after"].is_array()) throw UsageError(rw + ".after", "expected an array of run names");
  for (const auto& a : r.value("after", nlohmann::json::array())) {
    if (!a.is_string()) throw UsageError(rw + ".after", "expected run names");
    run.after.push_back(a.get<std::string>());
  }
  if (!r.contains("seeds")) {
    if (mentions(run.set, "{seed}")) throw UsageError(rw + ".set", "uses {seed} but the run has no \"seeds\"");
    for (const auto& a : run.after)
      if (a.find("{seed}") != std::string::npos)
        throw UsageError(rw + ".after", "uses {seed} but the run has no \"seeds\"");
    return {run};
  }
  const auto& seeds = r["seeds"];
  if (!seeds.is_array() || seeds.empty()) throw UsageError(rw + ".seeds", "expected a non-empty array of seeds");
  if (run.set.contains("seed")) throw UsageError(rw + ".set.seed", "conflicts with \"seeds\" (each seed sets it)");
  std::vector<SuiteRun> out;
  std::set<std::int64_t> seen;
  for (const auto& sj : seeds) {
    if (!sj.is_number_integer() || sj.get<std::int64_t>() < 0)
      throw UsageError(rw + ".seeds", fmt::format("expected non-negative integers, got {}", sj.dump()));
    const std::int64_t seed = sj.get<std::int64_t>();
    if (!seen.insert(seed).second) throw UsageError(rw + ".seeds", fmt::format("seed {} given twice", seed));
    const std::string token = std::to_string(seed);
    SuiteRun s = run;
    s.seed = seed;
    s.name = run.name + "-s" + token;
    s.set = replace_in_strings(run.set, "{seed}", token);
    s.set["seed"] = seed;
    for (auto& a : s.after) a = replace_in_strings(a, "{seed}", token).get<std::string>();
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace

Suite read_suite(const fs::path& file) {
  const auto j = io::read_json_file(file);
  const std::string f = file.string();
  only_keys(j, {"name", "description", "experiments", "comment"}, f);
  Suite s;
  s.file = file;
  s.name = req_string(j, "name", f);
  s.description = j.value("description", "");
  if (!j.contains("experiments") || !j["experiments"].is_array())
    throw UsageError(f + ": experiments", "expected an array");
  std::set<std::string> names;
  for (const auto& e : j["experiments"]) {
    const std::string w = f + ": experiments[" + std::to_string(s.experiments.size()) + "]";
    only_keys(e, {"name", "description", "runs", "grids", "comment"}, w);
    SuiteExperiment x;
    x.name = req_string(e, "name", w);
    if (!names.insert(x.name).second) throw UsageError(w + ".name", "duplicate experiment '" + x.name + "'");
    x.description = e.value("description", "");
    std::set<std::string> run_names;
    std::size_t index = 0;
    for (const auto& r : e.value("runs", nlohmann::json::array())) {
      const std::string rw = w + ".runs[" + std::to_string(index++) + "]";
      for (auto& run : read_runs(r, file, rw)) {
        if (!run_names.insert(run.name).second)
          throw UsageError(rw + ".name", "duplicate run '" + run.name + "'" +
                                             (run.seed >= 0 ? " (after expanding \"seeds\")" : ""));
        x.runs.push_back(std::move(run));
      }
    }
    for (const auto& run : x.runs)
      for (const auto& a : run.after)
        if (!run_names.count(a))
          throw UsageError(w, fmt::format("run '{}' waits for unknown run '{}' (a run with \"seeds\" is named "
                                          "<name>-s<seed>: write \"<name>-s{{seed}}\")",
                                          run.name, a));
    for (const auto& g : e.value("grids", nlohmann::json::array())) {
      if (!g.is_string()) throw UsageError(w + ".grids", "expected grid file paths");
      x.grids.push_back(file.parent_path() / g.get<std::string>());
    }
    s.experiments.push_back(std::move(x));
  }
  return s;
}

nlohmann::json replace_in_strings(const nlohmann::json& j, const std::string& token, const std::string& value) {
  if (j.is_string()) {
    std::string s = j.get<std::string>();
    for (std::size_t p = s.find(token); p != std::string::npos; p = s.find(token, p + value.size()))
      s.replace(p, token.size(), value);
    return s;
  }
  if (j.is_object()) {
    nlohmann::json o = nlohmann::json::object();
    for (const auto& [k, v] : j.items()) o[k] = replace_in_strings(v, token, value);
    return o;
  }
  if (j.is_array()) {
    nlohmann::json a = nlohmann::json::array();
    for (const auto& v : j) a.push_back(replace_in_strings(v, token, value));
    return a;
  }
  return j;
}

nlohmann::json substitute(const nlohmann::json& set, const std::string& exp_dir) {
  return replace_in_strings(set, "{exp}", exp_dir);
}

}  // namespace wdlab::app

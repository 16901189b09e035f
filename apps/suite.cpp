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
    for (const auto& r : e.value("runs", nlohmann::json::array())) {
      const std::string rw = w + ".runs[" + std::to_string(x.runs.size()) + "]";
      only_keys(r, {"name", "config", "set", "after", "comment"}, rw);
      SuiteRun run;
      run.name = req_string(r, "name", rw);
      if (!run_names.insert(run.name).second) throw UsageError(rw + ".name", "duplicate run '" + run.name + "'");
      run.config = file.parent_path() / req_string(r, "config", rw);
      if (r.contains("set")) {
        if (!r["set"].is_object()) throw UsageError(rw + ".set", "expected an object");
        run.set = r["set"];
      }
      for (const auto& a : r.value("after", nlohmann::json::array())) {
        if (!a.is_string()) throw UsageError(rw + ".after", "expected run names");
        run.after.push_back(a.get<std::string>());
      }
      x.runs.push_back(std::move(run));
    }
    for (const auto& run : x.runs)
      for (const auto& a : run.after)
        if (!run_names.count(a)) throw UsageError(w, fmt::format("run '{}' waits for unknown run '{}'", run.name, a));
    for (const auto& g : e.value("grids", nlohmann::json::array())) {
      if (!g.is_string()) throw UsageError(w + ".grids", "expected grid file paths");
      x.grids.push_back(file.parent_path() / g.get<std::string>());
    }
    s.experiments.push_back(std::move(x));
  }
  return s;
}

nlohmann::json substitute(const nlohmann::json& set, const std::string& exp_dir) {
  if (set.is_string()) {
    std::string s = set.get<std::string>();
    for (std::size_t p; (p = s.find("{exp}")) != std::string::npos;) s.replace(p, 5, exp_dir);
    return s;
  }
  if (set.is_object()) {
    nlohmann::json o = nlohmann::json::object();
    for (const auto& [k, v] : set.items()) o[k] = substitute(v, exp_dir);
    return o;
  }
  return set;
}

}  // namespace wdlab::app

#include "apps/report_runs.hpp"

#include <algorithm>
#include <fmt/format.h>

#include "common/errors.hpp"
#include "common/io/json_config.hpp"
#include "common/train/metrics_log.hpp"

namespace fs = std::filesystem;

namespace wdlab::app {

std::string RunRecord::cfg_str(const char* key, const std::string& def) const {
  return config.contains(key) && config[key].is_string() ? config[key].get<std::string>() : def;
}

double RunRecord::cfg_num(const char* key, double def) const {
  return config.contains(key) && config[key].is_number() ? config[key].get<double>() : def;
}

std::int64_t RunRecord::seed() const {
  return config.contains("seed") && config["seed"].is_number_integer() ? config["seed"].get<std::int64_t>() : -1;
}

std::string RunRecord::setting() const {
  const std::int64_t s = seed();
  if (s < 0) return name;
  const std::string suffix = "-s" + std::to_string(s);
  if (name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0)
    return name.substr(0, name.size() - suffix.size());
  return name;
}

bool RunRecord::bn() const {
  return config.contains("arch") && config["arch"].value("batchnorm", false);
}

bool RunRecord::augment() const { return config.value("augment", false); }

std::string RunRecord::dataset_label() const {
  const std::string d = cfg_str("dataset");
  if (d == "cifar10") return "CIFAR-10";
  if (d == "cifar100") return "CIFAR-100";
  if (d == "fashion-mnist") return "F-MNIST";
  if (d == "mnist") return "MNIST";
  return d;
}

std::string RunRecord::network_label() const {
  const std::string m = cfg_str("model");
  const auto& a = config.contains("arch") ? config["arch"] : nlohmann::json::object();
  if (m == "mlp") return fmt::format("MLP {}x{}", a.value("depth", 0), a.value("width", 0));
  if (m == "convnet") return fmt::format("ConvNet {}", a.value("base_width", 0));
  if (m.rfind("vgg", 0) == 0) {
    const double wm = a.value("width_mult", 1.0);
    return "VGG" + m.substr(3) + (wm != 1.0 ? fmt::format(" x{:g}", wm) : "");
  }
  if (m.rfind("resnet", 0) == 0) {
    const int widen = a.value("widen", 1);
    return "ResNet" + m.substr(6) + (widen != 4 ? fmt::format(" (widen {})", widen) : "");
  }
  return m;
}

namespace {
/// The wn scope of a config ("conv", "fc", "all"), or "" when it has none (key wn.scope).
std::string wn_scope(const nlohmann::json& c) {
  if (!c.contains("wn") || !c["wn"].is_object()) return "";
  const std::string s = c["wn"].value("scope", "none");
  return s == "none" ? "" : s;
}
}  // namespace

std::string RunRecord::reg_class() const {
  const std::string reg = cfg_str("regularization", "none");
  const double wd = cfg_num("weight_decay", 0);
  const std::string scope = cfg_str("wd_scope", "all");
  std::string base;
  if (reg == "none" || wd == 0) base = "none";
  else if (reg == "l2" && optimizer() != "sgd") base = scope == "all" ? "l2" : "l2-" + scope;
  else base = scope == "all" ? "wd" : "wd-" + scope;
  const std::string wn = wn_scope(config);
  if (!wn.empty()) return base == "none" ? "wn-" + wn : base + "+wn-" + wn;
  return base;
}

std::string RunRecord::family() const {
  return fmt::format("{}|{}|{}|{}|{}|{}|bs{}", group, dataset_label(), network_label(), bn() ? "B" : "-",
                     augment() ? "D" : "-", optimizer(), cfg_num("batch_size", 0));
}

double RunRecord::last(const std::string& key) const {
  for (auto it = rows.rbegin(); it != rows.rend(); ++it)
    if (it->contains(key)) return (*it)[key].is_number() ? (*it)[key].get<double>() : kNaN;
  return kNaN;
}

double RunRecord::first(const std::string& key) const {
  for (const auto& r : rows)
    if (r.contains(key)) return r[key].is_number() ? r[key].get<double>() : kNaN;
  return kNaN;
}

int RunRecord::epochs() const {
  const double e = last("epoch");
  return std::isnan(e) ? 0 : int(e);
}

std::vector<double> RunRecord::series(const std::string& key) const {
  std::vector<double> v;
  for (const auto& r : rows) v.push_back(r.contains(key) && r[key].is_number() ? r[key].get<double>() : kNaN);
  return v;
}

std::string RunRecord::first_key(const std::string& prefix) const {
  if (rows.empty()) return "";
  for (const auto& [k, v] : rows.front().items())
    if (k.rfind(prefix, 0) == 0) return k;
  return "";
}

double RunRecord::test_acc() const {
  if (done.is_object() && done.contains("test_acc") && done["test_acc"].is_number()) return done["test_acc"].get<double>();
  return last("test_acc");
}

namespace {

void add_run(const fs::path& dir, const std::string& group, std::vector<RunRecord>& out) {
  RunRecord r;
  r.dir = dir;
  r.group = group;
  r.name = dir.filename().string();
  r.config = io::read_json_file(dir / "config.json");
  if (fs::exists(dir / "DONE")) r.done = io::read_json_file(dir / "DONE");
  if (fs::exists(dir / "metrics.jsonl"))
    r.rows = train::MetricsLog(dir).rows();
  out.push_back(std::move(r));
}

void scan(const fs::path& dir, const std::string& group, int depth, std::vector<RunRecord>& out) {
  if (fs::exists(dir / "config.json")) {
    add_run(dir, group, out);
    return;
  }
  if (fs::exists(dir / "manifest.json")) {  // a sweep: its final run (else every finished point)
    const auto m = io::read_json_file(dir / "manifest.json");
    const std::string name = m.value("name", dir.filename().string());
    if (m.contains("final") && m["final"].contains("dir") && fs::exists(dir / m["final"]["dir"].get<std::string>() / "DONE")) {
      add_run(dir / m["final"]["dir"].get<std::string>(), group, out);
      out.back().name = name;
    } else if (m.contains("points")) {
      for (const auto& p : m["points"])
        if (fs::exists(dir / p.value("dir", "") / "DONE")) add_run(dir / p["dir"].get<std::string>(), group, out);
    }
    return;
  }
  if (depth == 0 || !fs::is_directory(dir)) return;
  std::vector<fs::path> subs;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_directory() && e.path().filename() != "report" && e.path().filename() != "logs") subs.push_back(e.path());
  std::sort(subs.begin(), subs.end());
  for (const auto& s : subs) scan(s, dir.filename().string(), depth - 1, out);
}

}  // namespace

std::vector<RunRecord> load_runs(const std::vector<fs::path>& inputs) {
  std::vector<RunRecord> runs;
  for (const auto& in : inputs) {
    if (!fs::exists(in)) throw DataError(in.string(), "no such run directory");
    const fs::path abs = fs::absolute(in).lexically_normal();
    std::string group = (abs.has_filename() ? abs : abs.parent_path()).parent_path().filename().string();
    scan(in, group, 4, runs);
  }
  return runs;
}

double pearson(const std::vector<double>& x, const std::vector<double>& y) {
  const std::size_t n = x.size();
  if (n < 3 || y.size() != n) return kNaN;
  double mx = 0, my = 0;
  for (std::size_t i = 0; i < n; ++i) mx += x[i], my += y[i];
  mx /= double(n);
  my /= double(n);
  double sxy = 0, sxx = 0, syy = 0;
  for (std::size_t i = 0; i < n; ++i) {
    sxy += (x[i] - mx) * (y[i] - my);
    sxx += (x[i] - mx) * (x[i] - mx);
    syy += (y[i] - my) * (y[i] - my);
  }
  if (sxx <= 0 || syy <= 0) return kNaN;
  return sxy / std::sqrt(sxx * syy);
}

}  // namespace wdlab::app

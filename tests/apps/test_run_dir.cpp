// The run directory (apps/run_dir.*) in process: what open() decides from what a directory holds
// (start, continue, complete, refuse), --reset prefixes, the legacy metric keys, and the files
// start()/finish() write. The child-process tests (test_cli, test_durability) cover the same
// through `wdlab train`; these are the decisions one by one.
#include <fstream>
#include <string>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "../support/temp_dir.hpp"
#include "apps/experiment_config.hpp"
#include "apps/run_dir.hpp"
#include "common/errors.hpp"
#include "common/io/json_config.hpp"

using namespace wdlab;
using app::ResumeMode;
using app::RunDirectory;
using Json = nlohmann::json;

namespace {

app::OpenedRun open_with(const RunDirectory& dir, const Json& resolved) {
  return dir.open(resolved, app::parse_config(resolved));
}

std::string usage_error(const RunDirectory& dir, const Json& resolved) {
  try {
    open_with(dir, resolved);
  } catch (const UsageError& e) {
    return e.what();
  }
  return "";
}

void write(const std::filesystem::path& p, const std::string& text) { std::ofstream(p) << text; }

}  // namespace

TEST_CASE("run directory: an empty one starts, config.json and meta.json are written as given") {
  test::TempDir tmp;
  const RunDirectory dir(tmp / "run", ResumeMode::never, {});
  const Json cfg = Json::parse(R"({"lr": 0.05, "epochs": 2})");
  const auto run = open_with(dir, cfg);
  CHECK(!run.complete);
  CHECK(!run.legacy);
  CHECK(!run.from);
  dir.start(run, nlohmann::ordered_json{{"argv", "x"}});
  CHECK(io::read_json_file(tmp / "run" / "config.json") == Json(app::parse_config(cfg).to_json()));
  CHECK(io::read_json_file(tmp / "run" / "meta.json")["argv"] == "x");
  // Now it holds a run: ResumeMode::never refuses it, naming --out.
  CHECK(usage_error(dir, cfg).find("--out") == 0);
}

TEST_CASE("run directory: a changed config key is refused naming it, unless a --reset prefix accepts it") {
  test::TempDir tmp;
  const Json cfg = Json::parse(R"({"lr": 0.05, "epochs": 2, "kfac": {"damping": 0.01}})");
  {
    const RunDirectory first(tmp.path(), ResumeMode::continue_run, {});
    first.start(open_with(first, cfg), nlohmann::ordered_json::object());
  }
  Json changed = cfg;
  changed["epochs"] = 3;
  changed["kfac"]["damping"] = 0.02;
  const RunDirectory strict(tmp.path(), ResumeMode::continue_run, {});
  const std::string e = usage_error(strict, changed);
  CHECK(e.find("--resume") == 0);
  CHECK(e.find("epochs") != std::string::npos);
  CHECK(e.find("kfac.damping") != std::string::npos);
  // Unchanged keys are not named: only the key list counts (the message also holds the run's
  // temporary path, whose random letters may spell anything, "lr" included).
  const auto from = e.find("'s in: "), to = e.find(" (pass --reset");
  REQUIRE(from != std::string::npos);
  REQUIRE(to != std::string::npos);
  const std::string keys = e.substr(from + 7, to - from - 7);
  CHECK(keys == "epochs, kfac.damping");
  // The same config resumes (no checkpoint yet: it starts over).
  CHECK(usage_error(strict, cfg).empty());
  // --reset epochs --reset kfac (a prefix covers kfac.damping).
  const RunDirectory lenient(tmp.path(), ResumeMode::continue_run, {"epochs", "kfac"});
  CHECK(lenient.accepts("kfac.damping"));
  CHECK(!lenient.accepts("kfac_x"));
  CHECK(!lenient.accepts("lr"));
  CHECK(usage_error(lenient, changed).empty());
  // --reset epoch is not a prefix of epochs' path segments.
  const RunDirectory partial(tmp.path(), ResumeMode::continue_run, {"epoch", "kfac"});
  CHECK(usage_error(partial, changed).find("epochs") != std::string::npos);
}

TEST_CASE("run directory: DONE with the same config is complete, extended with --reset it continues") {
  test::TempDir tmp;
  const Json cfg = Json::parse(R"({"epochs": 2})");
  const RunDirectory dir(tmp.path(), ResumeMode::continue_run, {"epochs"});
  dir.start(open_with(dir, cfg), nlohmann::ordered_json::object());
  write(tmp / "metrics.jsonl",
        "{\"epoch\": 0, \"iteration\": 0, \"test_acc\": 0.1}\n"
        "{\"epoch\": 1, \"iteration\": 5, \"test_acc\": 0.5, \"test_loss\": 1.5}\n"
        "{\"event\": \"nonfinite\", \"iteration\": 6}\n");
  const auto last = dir.finish(2.5);
  CHECK(last["epoch"] == 1);  // the last epoch row, not the event
  const Json done = io::read_json_file(tmp / "DONE");
  CHECK(done["epochs"] == 1);
  CHECK(done["iterations"] == 5);
  CHECK(done["test_acc"] == 0.5);
  CHECK(done["seconds"] == 2.5);
  CHECK(open_with(dir, cfg).complete);
  CHECK(std::filesystem::exists(tmp / "DONE"));
  Json more = cfg;
  more["epochs"] = 3;
  const auto run = open_with(dir, more);
  CHECK(!run.complete);
  CHECK(!std::filesystem::exists(tmp / "DONE"));  // it continues
}

TEST_CASE("run directory: a config from before metrics.probe_split/curvature_bn keeps test and eval") {
  test::TempDir tmp;
  auto old = app::parse_config(Json::object()).to_json();
  old["metrics"].erase("probe_split");
  old["metrics"].erase("curvature_bn");
  write(tmp / "config.json", old.dump(2));
  const RunDirectory dir(tmp.path(), ResumeMode::continue_run, {});
  // A config spelling out the new defaults still resumes the old run, with the old meaning.
  const auto run = open_with(dir, Json::parse(R"({"metrics": {"probe_split": "train", "curvature_bn": "batch"}})"));
  CHECK(run.legacy);
  CHECK(run.config.metrics.probe_split == train::ProbeSplit::test);
  CHECK(run.config.metrics.curvature_bn == train::CurvatureBn::eval);
  CHECK(!run.written["metrics"].contains("probe_split"));
  CHECK(Json(run.written) == Json(old));
  // A new run gets the new defaults and writes them.
  test::TempDir fresh;
  const RunDirectory other(fresh.path(), ResumeMode::continue_run, {});
  const auto n = open_with(other, Json::object());
  CHECK(!n.legacy);
  CHECK(n.written["metrics"]["probe_split"] == "train");
}

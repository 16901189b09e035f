// The suite file's "seeds" (apps/suite.hpp) in process: one run per seed named <name>-s<seed>, the
// config's seed set, "{seed}" replaced in "set" strings and "after", runs without seeds unchanged;
// bad input refused with the file and the field named. And RunRecord::seed()/setting().
#include <fstream>
#include <string>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "../support/temp_dir.hpp"
#include "apps/report_runs.hpp"
#include "apps/suite.hpp"
#include "common/errors.hpp"

using namespace wdlab;
using Json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

fs::path write_suite(const fs::path& dir, const Json& runs) {
  const Json suite = {{"name", "t"}, {"experiments", {{{"name", "e"}, {"runs", runs}}}}};
  std::ofstream(dir / "suite.json") << suite.dump(2);
  return dir / "suite.json";
}

/// The UsageError's message of reading a suite with these runs, "" when it reads.
std::string error_of(const fs::path& dir, const Json& runs) {
  try {
    app::read_suite(write_suite(dir, runs));
  } catch (const UsageError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("suite seeds: one run per seed, named <name>-s<seed>, seed set, {seed} replaced in set and after") {
  test::TempDir tmp;
  const Json runs = Json::parse(R"([
    {"name": "wd-all", "config": "c.json", "seeds": [1, 2, 3, 7], "set": {"weight_decay": 5e-4}},
    {"name": "wn-conv", "config": "c.json", "seeds": [2, 7],
     "set": {"wn.norms_from": "{exp}/wd-all-s{seed}", "tag": "s{seed}-{seed}"}, "after": ["wd-all-s{seed}", "plain"]},
    {"name": "plain", "config": "c.json", "set": {"lr": 0.1, "path": "{exp}/x"}}
  ])");
  const app::Suite s = app::read_suite(write_suite(tmp.path(), runs));
  REQUIRE(s.experiments.size() == 1);
  const auto& rs = s.experiments[0].runs;
  REQUIRE(rs.size() == 7);
  const std::vector<std::string> names = {"wd-all-s1", "wd-all-s2", "wd-all-s3", "wd-all-s7",
                                          "wn-conv-s2", "wn-conv-s7", "plain"};
  for (std::size_t i = 0; i < names.size(); ++i) CHECK(rs[i].name == names[i]);
  for (int i = 0; i < 3; ++i) {
    CHECK(rs[i].seed == i + 1);
    CHECK(rs[i].set["seed"] == i + 1);
    CHECK(rs[i].set["weight_decay"] == 5e-4);
    CHECK(rs[i].config == tmp.path() / "c.json");
  }
  CHECK(rs[4].set["seed"] == 2);
  CHECK(rs[4].set["wn.norms_from"] == "{exp}/wd-all-s2");  // {exp} stays for reproduce to fill
  CHECK(rs[4].set["tag"] == "s2-2");                     // every occurrence
  CHECK(rs[4].after == std::vector<std::string>{"wd-all-s2", "plain"});
  CHECK(rs[5].set["seed"] == 7);
  CHECK(rs[5].set["wn.norms_from"] == "{exp}/wd-all-s7");
  CHECK(rs[5].after == std::vector<std::string>{"wd-all-s7", "plain"});
  // Without "seeds": name, set and seed untouched.
  CHECK(rs[6].seed == -1);
  CHECK(rs[6].set == Json{{"lr", 0.1}, {"path", "{exp}/x"}});
  CHECK(app::substitute(rs[4].set, "/o/e")["wn.norms_from"] == "/o/e/wd-all-s2");
}

TEST_CASE("suite seeds: an after naming a seed that was not run is refused") {
  test::TempDir tmp;
  // wn-conv seed 7 would wait for wd-all-s7, which the suite does not have.
  const std::string e = error_of(tmp.path(), Json::parse(R"([
    {"name": "wd-all", "config": "c.json", "seeds": [1, 2]},
    {"name": "wn-conv", "config": "c.json", "seeds": [2, 7], "after": ["wd-all-s{seed}"]}])"));
  CHECK(e.find("suite.json") != std::string::npos);
  CHECK(e.find("wn-conv-s7") != std::string::npos);
  CHECK(e.find("wd-all-s7") != std::string::npos);
}

TEST_CASE("suite seeds: bad input names the suite file and the field") {
  test::TempDir tmp;
  struct Case {
    const char* what;
    const char* runs;
    const char* field;
  };
  const Case cases[] = {
      {"seeds not an array", R"([{"name": "a", "config": "c.json", "seeds": 3}])", "runs[0].seeds"},
      {"seeds empty", R"([{"name": "a", "config": "c.json", "seeds": []}])", "runs[0].seeds"},
      {"a negative seed", R"([{"name": "a", "config": "c.json", "seeds": [1, -2]}])", "runs[0].seeds"},
      {"a fractional seed", R"([{"name": "a", "config": "c.json", "seeds": [1.5]}])", "runs[0].seeds"},
      {"a seed as a string", R"([{"name": "a", "config": "c.json", "seeds": ["1"]}])", "runs[0].seeds"},
      {"a seed twice", R"([{"name": "a", "config": "c.json", "seeds": [1, 1]}])", "runs[0].seeds"},
      {"seed in set beside seeds", R"([{"name": "a", "config": "c.json", "seeds": [1], "set": {"seed": 4}}])",
       "runs[0].set.seed"},
      {"{seed} in set without seeds", R"([{"name": "a", "config": "c.json", "set": {"p": "x-{seed}"}}])", "runs[0].set"},
      {"{seed} in after without seeds",
       R"([{"name": "b", "config": "c.json"}, {"name": "a", "config": "c.json", "after": ["b-s{seed}"]}])",
       "runs[1].after"},
      {"after a seeded run by its bare name",
       R"([{"name": "b", "config": "c.json", "seeds": [1]}, {"name": "a", "config": "c.json", "after": ["b"]}])",
       "experiments[0]"},
      {"an expanded name equal to another run's",
       R"([{"name": "a-s1", "config": "c.json"}, {"name": "a", "config": "c.json", "seeds": [1]}])", "runs[1].name"},
      {"a typo beside seeds", R"([{"name": "a", "config": "c.json", "seed": [1]}])", "runs[0].seed"},
  };
  for (const auto& c : cases) {
    const std::string e = error_of(tmp.path(), Json::parse(c.runs));
    INFO(c.what, ": ", e);
    CHECK(e.find((tmp.path() / "suite.json").string()) != std::string::npos);
    CHECK(e.find(c.field) != std::string::npos);
  }
  // Negative control: the same shapes, valid, read.
  CHECK(error_of(tmp.path(), Json::parse(R"([{"name": "a", "config": "c.json", "seeds": [0, 1]},
      {"name": "b", "config": "c.json", "seeds": [1], "after": ["a-s{seed}"], "set": {"p": "x-{seed}"}}])")) == "");
}

TEST_CASE("report RunRecord: seed() from the config, setting() drops the -s<seed> suffix only") {
  app::RunRecord r;
  r.config = {{"seed", 3}};
  r.name = "wd-all-s3";
  CHECK(r.seed() == 3);
  CHECK(r.setting() == "wd-all");
  r.name = "wd-all-s31";  // another seed's suffix: not this run's
  CHECK(r.setting() == "wd-all-s31");
  r.name = "wd-all";
  CHECK(r.setting() == "wd-all");
  r.name = "-s3";  // nothing left before the suffix: the name itself
  CHECK(r.setting() == "-s3");
  r.config = Json::object();
  r.name = "x-s1";
  CHECK(r.seed() == -1);
  CHECK(r.setting() == "x-s1");
}

// Runs of the previous release still work: tests/fixtures/release-1d1a02e holds four tiny run
// directories (SGD+WD, Adam+L2, K-FAC-F on a BN convnet, K-FAC-G+WD on a convnet without BN) that
// `wdlab train` at commit 1d1a02e wrote after one epoch, and the epoch-2 metrics row that the same
// build wrote when resumed for a second epoch. Today's build evaluates the epoch-1 checkpoints to
// the old test loss and resumes them to the old epoch-2 row, so tensor names, the optimizer-state
// layout, the config keys and the metric names are all read as that release wrote them.
#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <filesystem>
#include <regex>
#include <sstream>
#include <string>

#include "run_command.hpp"

namespace fs = std::filesystem;
using wdlab::test::fresh_dir;
using wdlab::test::run_wdlab;
using wdlab::test::slurp;

namespace {

const fs::path kRelease = fs::path(WDLAB_SOURCE_DIR) / "tests" / "fixtures" / "release-1d1a02e";
const char* const kRuns[] = {"sgd", "adam", "kfac-f", "kfac-g"};

nlohmann::json last_row(const fs::path& jsonl) {
  std::istringstream in(slurp(jsonl));
  std::string line, last;
  while (std::getline(in, line))
    if (!line.empty()) last = line;
  return nlohmann::json::parse(last);
}

nlohmann::json row_of_epoch(const fs::path& jsonl, int epoch) {
  std::istringstream in(slurp(jsonl));
  std::string line;
  while (std::getline(in, line))
    if (!line.empty() && nlohmann::json::parse(line).at("epoch") == epoch) return nlohmann::json::parse(line);
  FAIL("no row for epoch " << epoch << " in " << jsonl);
  return {};
}

/// Float32 training: the same operations give the same bits, but a later, faster kernel may sum
/// in another order; 1e-5 relative admits that and nothing a changed layout or name would give.
bool close(double a, double b) { return std::abs(a - b) <= 1e-5 * std::max(1.0, std::abs(b)); }

}  // namespace

TEST_CASE("checkpoints of the previous release evaluate to the test loss that release logged") {
  if (!wdlab::test::have_fashion_mnist()) return;  // run_command.hpp: Debian's data set absent
  for (const std::string run : kRuns) {
    CAPTURE(run);
    const fs::path ckpt = kRelease / run / "checkpoints" / "epoch-0001.safetensors";
    const auto r = run_wdlab("eval --threads 1 --checkpoint " + ckpt.string());
    REQUIRE_MESSAGE(r.rc == 0, r.err);
    std::smatch m;
    REQUIRE(std::regex_search(r.out, m, std::regex("loss ([0-9.eE+-]+), accuracy ([0-9.]+)")));
    const auto old = row_of_epoch(kRelease / run / "metrics.jsonl", 1);
    MESSAGE(run << ": eval loss " << m[1] << ", the release logged " << old.at("test_loss"));
    CHECK(std::abs(std::stod(m[1]) - old.at("test_loss").get<double>()) < 1e-5);  // eval prints 6 digits
  }
}

TEST_CASE("runs of the previous release resume to the epoch-2 row that release wrote") {
  if (!wdlab::test::have_fashion_mnist()) return;
  for (const std::string run : kRuns) {
    CAPTURE(run);
    const fs::path dir = fresh_dir("release_compat", run);
    fs::copy(kRelease / run, dir, fs::copy_options::recursive);
    const auto r = run_wdlab("train --quiet --threads 1 --out " + dir.string() + " --config " +
                             (dir / "config.json").string() + " --set epochs=2 --reset epochs");
    REQUIRE_MESSAGE(r.rc == 0, r.err);
    const auto got = last_row(dir / "metrics.jsonl");
    const auto want = nlohmann::json::parse(slurp(kRelease / run / "expected-epoch-0002.json"));
    const auto before = row_of_epoch(kRelease / run / "metrics.jsonl", 1);
    REQUIRE(got.at("epoch") == 2);
    int compared = 0, moved = 0;
    for (const auto& [key, value] : want.items()) {
      if (key == "epoch_seconds" || !value.is_number()) continue;
      CAPTURE(key);
      REQUIRE_MESSAGE(got.contains(key), "today's row lacks " << key);
      CHECK(close(got.at(key).get<double>(), value.get<double>()));
      ++compared;
      // The control: the compared values are ones a second epoch changes.
      if (before.contains(key) && !close(before.at(key).get<double>(), value.get<double>())) ++moved;
    }
    MESSAGE(run << ": " << compared << " values of the epoch-2 row equal the release's, " << moved
                << " of them changed by the epoch");
    CHECK(compared >= 6);
    CHECK(moved >= 3);
    fs::remove_all(dir);
  }
}

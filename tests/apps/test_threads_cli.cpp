// --threads / WDLAB_THREADS: one BLAS thread count for every command, divided between the -j
// children of a sweep, recorded in meta.json and the checkpoint (float results depend on it).
#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <regex>

#include "run_command.hpp"

namespace fs = std::filesystem;
using wdlab::test::run_wdlab;
using wdlab::test::slurp;

namespace {

/// The "threads: N of M cores" count `wdlab info` prints, -1 when absent.
int info_threads(const std::string& out) {
  std::smatch m;
  if (!std::regex_search(out, m, std::regex("threads: +([0-9]+) of [0-9]+ cores"))) return -1;
  return std::stoi(m[1]);
}

bool built_with_openblas() { return run_wdlab("info").out.find("blas:         OpenBLAS") != std::string::npos; }

/// A tiny MLP run on 320 Fashion-MNIST images (seconds).
nlohmann::json tiny_config() {
  return {{"name", "tiny"},     {"train_subset", 320}, {"validation", 64},          {"test_subset", 128},
          {"model", "mlp"},     {"arch", {{"depth", 1}, {"width", 16}}}, {"optimizer", "sgd"},
          {"lr", 0.05},         {"momentum", 0.9},     {"epochs", 1},               {"batch_size", 32},
          {"checkpoint", {{"keep", 1}}}};
}

}  // namespace

TEST_CASE("--threads sets the engine thread count, WDLAB_THREADS its default, bad values exit 2 naming them") {
  // The engine's pool takes any count (more threads than cores too), so 3 shows on any machine,
  // with or without OpenBLAS; each BLAS call runs on one of them.
  const int want = 3;
  const auto opt = run_wdlab("info --threads 3");
  CHECK(opt.rc == 0);
  CHECK(info_threads(opt.out) == want);
  const auto env = run_wdlab("info", "WDLAB_THREADS=3");
  CHECK(env.rc == 0);
  CHECK(info_threads(env.out) == want);
  const auto one = run_wdlab("info --threads 1");
  CHECK(info_threads(one.out) == 1);

  const auto neg = run_wdlab("info --threads -1");
  CHECK(neg.rc == 2);
  CHECK(neg.err.find("--threads") != std::string::npos);
  const auto bad_env = run_wdlab("info", "WDLAB_THREADS=abc");
  CHECK(bad_env.rc == 2);
  CHECK(bad_env.err.find("WDLAB_THREADS") != std::string::npos);
  const auto zero_env = run_wdlab("info", "WDLAB_THREADS=0");
  CHECK(zero_env.rc == 2);
}

TEST_CASE("sweep -j N divides its threads between the children, train records them, a resume on another kernel set says so") {
  if (!wdlab::test::have_fashion_mnist()) {
    MESSAGE("skipped: Debian's dataset-fashion-mnist is not installed");
    return;
  }
  const fs::path dir = wdlab::test::fresh_dir("wdlab_threads", "sweep");
  fs::create_directories(dir);
  std::ofstream(dir / "base.json") << tiny_config().dump(2);
  nlohmann::json grid = {{"name", "tiny"}, {"base", "base.json"}, {"axes", {{"lr", {0.01, 0.05}}}},
                         {"final", false}};
  std::ofstream(dir / "grid.json") << grid.dump(2);

  const auto threads_of_runs = [&](const fs::path& out) {
    std::vector<int> t;
    for (const auto& e : fs::directory_iterator(out / "runs"))
      t.push_back(nlohmann::json::parse(slurp(e.path() / "meta.json")).at("threads").get<int>());
    return t;
  };
  const auto two = run_wdlab("sweep --grid " + (dir / "grid.json").string() + " --out " + (dir / "j2").string() +
                             " -j 2 --threads 4");
  REQUIRE_MESSAGE(two.rc == 0, two.err);
  CHECK(threads_of_runs(dir / "j2") == std::vector<int>{2, 2});
  const auto one = run_wdlab("sweep --grid " + (dir / "grid.json").string() + " --out " + (dir / "j1").string() +
                             " -j 1 --threads 3");
  REQUIRE_MESSAGE(one.rc == 0, one.err);
  CHECK(threads_of_runs(dir / "j1") == std::vector<int>{3, 3});

  // A run records its count and kernel set in the checkpoint. Resuming it on another count is
  // the uninterrupted run (no note); on another kernel set the note says it is not.
  const std::string cfg = (dir / "base.json").string(), run = (dir / "run").string();
  const auto first = run_wdlab("train --config " + cfg + " --out " + run + " --threads 1 --quiet");
  REQUIRE_MESSAGE(first.rc == 0, first.err);
  const auto meta = nlohmann::json::parse(slurp(dir / "run" / "meta.json"));
  CHECK(meta.at("threads") == 1);
  CHECK(!meta.at("blas_kernels").get<std::string>().empty());
  const auto same = run_wdlab("train --config " + cfg + " --out " + run + " --threads 1 --set epochs=2 --reset epochs --quiet");
  REQUIRE_MESSAGE(same.rc == 0, same.err);
  CHECK(same.err.find("bit-identical") == std::string::npos);
  const auto other = run_wdlab("train --config " + cfg + " --out " + run + " --threads 2 --set epochs=3 --reset epochs --quiet");
  REQUIRE_MESSAGE(other.rc == 0, other.err);
  CHECK(other.err.find("bit-identical") == std::string::npos);
  if (!built_with_openblas()) {  // no kernel set to change: Eigen's products are compiled in
    MESSAGE("pure-Eigen build: the kernel-set note is not reachable");
    fs::remove_all(dir);
    return;
  }
  const std::string kernels = meta.at("blas_kernels").get<std::string>();
  // An older set than this CPU's, which any x86-64 CPU that has these kernels can run.
  const std::string coretype = kernels == "Nehalem" ? "Core2" : "Nehalem";
  const auto moved = run_wdlab("train --config " + cfg + " --out " + run + " --threads 2 --set epochs=4 --reset epochs --quiet",
                               "OPENBLAS_CORETYPE=" + coretype);
  REQUIRE_MESSAGE(moved.rc == 0, moved.err);
  CHECK(moved.err.find("not be bit-identical") != std::string::npos);
  fs::remove_all(dir);
}

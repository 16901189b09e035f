// `wdlab bench` on the paper's networks: the backend a parameter, JSON rows with images/s and
// the fraction of peak, and --backend cuda refused in one line where it cannot run.
#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "run_command.hpp"

using wdlab::test::run_wdlab;

TEST_CASE("bench --model resnet32x4-bn (reference, shrunk): one JSON row per batch and optimizer") {
  const auto r = run_wdlab(
      "bench --model resnet32x4-bn --width-mult 0.0625 --batches 2,3 --optimizers sgd,kfac-g --steps 2 --warmup 1 "
      "--precision float --format json");
  INFO(r.err);
  REQUIRE(r.rc == 0);
  const auto j = nlohmann::json::parse(r.out);
  CHECK(j["backend"] == "reference");
  CHECK(j["math_mode"] == "fp32");
  REQUIRE(j["results"].size() == 4);
  for (const auto& row : j["results"]) {
    for (const char* key : {"median_step_s", "mean_step_s", "images_per_s", "model_gflop_per_step", "tflops",
                            "fraction_fp32_peak", "timer"})
      CHECK(row.contains(key));
    CHECK(row["median_step_s"].get<double>() > 0);
    CHECK(row["timer"] == "steady_clock");
    CHECK(row["images_per_s"].get<double>() == doctest::Approx(row["batch"].get<double>() / row["median_step_s"].get<double>()));
  }
  CHECK(j["results"][1]["ratio_mean_to_sgd"].get<double>() > 0);
}

TEST_CASE("bench --params-only: the full-size models' parameter counts") {
  const auto r = run_wdlab("bench --model vgg16 --params-only --format json");
  REQUIRE(r.rc == 0);
  // 13 convs and one dense head, as scripts/bench_pytorch.py counts them in PyTorch.
  CHECK(nlohmann::json::parse(r.out)["params"] == 14719818);
  CHECK(nlohmann::json::parse(run_wdlab("bench --model resnet32x4-bn --params-only --format json").out)["params"] ==
        7422986);
}

TEST_CASE("bench --backend cuda where it cannot run: one line, exit 2, before any work") {
  const auto r = run_wdlab("bench --backend cuda --model vgg16 --batches 128");
  if (r.rc == 0) {
    MESSAGE("the CUDA backend ran here: nothing to check about its refusal");
    return;
  }
  CHECK(r.rc == 2);
  CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
  CHECK(r.err.find("--backend cuda: ") != std::string::npos);
  CHECK(run_wdlab("bench --backend nope").rc == 2);
  CHECK(run_wdlab("bench --model vgg16 --tf32 on").rc == 2);  // TF32 is a cuda math mode
}

TEST_CASE("bench and crosscheck name their own option for an unknown model or optimizer") {
  // Before: the name was searched between begin() of one temporary list and end() of another
  // (undefined behaviour, never a rejection), and a later check reported another option's name.
  const auto bench = run_wdlab("bench --model nonsense");
  CHECK(bench.rc == 2);
  CHECK(bench.err.find("--model: unknown model 'nonsense'") != std::string::npos);
  const auto xc = run_wdlab("crosscheck --optimizer nonsense");
  CHECK(xc.rc == 2);
  CHECK(xc.err.find("--optimizer: unknown optimizer 'nonsense' (sgd, adam, kfac-f, kfac-g, lion, all)") != std::string::npos);
  // Every known name still passes the check (the command then runs: --params-only is instant).
  for (const char* m : {"mlp-bn", "convnet-bn", "vgg16", "resnet32x4-bn"}) {
    const auto ok = run_wdlab(std::string("bench --params-only --model ") + m);
    INFO(m, ok.err);
    CHECK(ok.rc == 0);
  }
}

TEST_CASE("bench --format jsonl: a header line, then one complete JSON row per line, the same rows as json") {
  const std::string args =
      "bench --model resnet32x4-bn --width-mult 0.0625 --batches 2,3 --optimizers sgd,adam --steps 2 --warmup 1 "
      "--precision float --format ";
  const auto r = run_wdlab(args + "jsonl");
  INFO(r.err);
  REQUIRE(r.rc == 0);
  std::vector<nlohmann::json> lines;
  std::size_t start = 0;
  for (std::size_t nl; (nl = r.out.find('\n', start)) != std::string::npos; start = nl + 1)
    lines.push_back(nlohmann::json::parse(r.out.substr(start, nl - start)));  // each line stands alone
  REQUIRE(lines.size() == 5);
  CHECK(lines[0]["model"] == "resnet32x4-bn");
  CHECK_FALSE(lines[0].contains("results"));
  CHECK_FALSE(lines[0].contains("optimizer"));
  const auto whole = nlohmann::json::parse(run_wdlab(args + "json").out);
  CHECK(whole["params"] == lines[0]["params"]);
  for (std::size_t i = 1; i < lines.size(); ++i) {
    CAPTURE(i);
    CHECK(lines[i]["optimizer"] == whole["results"][i - 1]["optimizer"]);
    CHECK(lines[i]["batch"] == whole["results"][i - 1]["batch"]);
    CHECK(lines[i]["median_step_s"].get<double>() > 0);
  }
  CHECK(run_wdlab(args + "yaml").rc == 2);  // control: an unknown format is refused
}

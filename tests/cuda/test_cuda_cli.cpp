// `wdlab train --backend cuda` where it cannot run (no GPU here, or a build without the CUDA
// backend): one line naming the reason, exit 2, and no run directory. On a machine with a usable
// GPU this case is skipped (exit 77): there the command trains, which the GPU suite covers.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "../apps/run_command.hpp"
#if defined(WDLAB_HAVE_CUDA)
#include "cuda/device_query.hpp"
#endif

using wdlab::test::run_wdlab;

namespace {

/// The reason `--backend cuda` is refused in this build; skips (77) where a GPU is usable, since
/// the refusal cannot be observed there.
std::string expected_refusal() {
#if defined(WDLAB_HAVE_CUDA)
  const auto st = wdlab::cuda::query_devices();
  if (st.usable) {
    MESSAGE("a GPU is usable here: the refusal cannot be observed");
    std::exit(77);
  }
  return "no usable CUDA device";
#else
  return "built without the CUDA backend";
#endif
}

}  // namespace

TEST_CASE("train --backend cuda without a usable GPU: one line, exit 2, nothing written") {
  const std::string expect = expected_refusal();
  const auto out = std::filesystem::temp_directory_path() / ("wdlab_cuda_cli_" + std::to_string(::getpid()));
  std::filesystem::remove_all(out);
  const auto r = run_wdlab("train --backend cuda --quiet --set epochs=1 --out " + out.string());
  MESSAGE("rc=" << r.rc << " stderr: " << r.err);
  CHECK(r.rc == 2);
  CHECK(r.err.find("backend: ") != std::string::npos);
  CHECK(r.err.find(expect) != std::string::npos);
  // One line with the reason; main adds its usual pointer to --help on a second line.
  const std::string first = r.err.substr(0, r.err.find('\n'));
  CHECK(first.find(expect) != std::string::npos);
  CHECK(std::count(r.err.begin(), r.err.end(), '\n') <= 2);
  CHECK_FALSE(std::filesystem::exists(out));                  // refused before the run directory

  // Control: the same command on the reference backend gets past the check (dry run: no data).
  const auto ok = run_wdlab("train --backend reference --dry-run --quiet --set epochs=1");
  CHECK(ok.rc == 0);
}

TEST_CASE("eval and measure --backend cuda without a usable GPU: one line, exit 2, before reading the checkpoint") {
  const std::string expect = expected_refusal();
  // The checkpoint does not exist: the backend check must come first, or this would be a data error.
  const std::string missing = (std::filesystem::temp_directory_path() / "wdlab_no_such_checkpoint.safetensors").string();
  for (const std::string& cmd : {"eval --checkpoint " + missing, "measure --checkpoint " + missing}) {
    const auto r = run_wdlab(cmd + " --backend cuda");
    MESSAGE(cmd << ": rc=" << r.rc << " stderr: " << r.err);
    CHECK(r.rc == 2);
    const std::string first = r.err.substr(0, r.err.find('\n'));
    CHECK(first.find("backend: ") != std::string::npos);
    CHECK(first.find(expect) != std::string::npos);
    CHECK(std::count(r.err.begin(), r.err.end(), '\n') <= 2);
    // Control: on the reference backend the same command gets past the check and fails on the file.
    const auto ref = run_wdlab(cmd + " --backend reference");
    CHECK(ref.rc != 0);
    CHECK(ref.err.find(expect) == std::string::npos);
    CHECK(ref.err.find("wdlab_no_such_checkpoint") != std::string::npos);
  }
  const auto bad = run_wdlab("eval --checkpoint " + missing + " --backend tpu");
  CHECK(bad.rc == 2);
  CHECK(bad.err.find("--backend") != std::string::npos);
}

TEST_CASE("train --dry-run --backend cuda prints the device-memory plan, on any machine") {
  // ResNet32x4-BN at batch 2000 (the paper's large batch): ~64 GiB for the training set's outputs
  // and cotangents alone, more than an 80 GB GPU holds with the rest. The plan is host
  // arithmetic, so it prints here without a GPU; at batch 128 (control) it is a few GiB.
  const std::string base =
      "train --dry-run --set backend=cuda --set dataset=cifar10 --set model=resnet32 --set arch.widen=4 "
      "--set arch.batchnorm=true --set eval_batch_size=2000 --set batch_size=";
  const auto total = [](const std::string& out) {
    const auto at = out.find("  total");
    REQUIRE(at != std::string::npos);
    return std::stod(out.substr(at + 7));
  };
  const auto big = run_wdlab(base + "2000");
  INFO(big.out << big.err);
  REQUIRE(big.rc == 0);
  CHECK(big.out.find("device memory of the cuda backend") != std::string::npos);
  CHECK(big.out.find("train activations (batch 2000)") != std::string::npos);
  CHECK(big.out.find("eval activations (batch 2000, forward only)") != std::string::npos);
  const double big_gib = total(big.out);
  CHECK(big_gib > 80.0);
  const auto small = run_wdlab(base + "128");
  REQUIRE(small.rc == 0);
  CHECK(total(small.out) < big_gib - 50.0);
  // The reference backend's dry run prints no device plan.
  const auto ref = run_wdlab("train --dry-run --set model=mlp");
  CHECK(ref.out.find("device memory") == std::string::npos);
}

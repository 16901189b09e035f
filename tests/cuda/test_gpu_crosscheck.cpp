// `wdlab crosscheck --b cuda` on a GPU (label gpu; exit 77 without one): every layer kind alone
// and both losses, then whole networks, against the double reference. Every comparison must be
// within its tolerance and nothing may be MISSING: the K-FAC factors (layer cases: of the given
// cotangent; networks: K-FAC-F's sampled targets and K-FAC-G's probes), damped inverses,
// preconditioned gradients and kfac_* metrics included. A perturbed CUDA side must fail (the
// check can fail), and exact mode (integer layer cases on the float32 path) must match bit for bit.
#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "apps/crosscheck/cases.hpp"
#include "gpu_guard.hpp"

namespace {
/// The wdlab binary beside this test executable (both in the build's bin/): a build carried to
/// the GPU machine may sit under another path than the one compiled in as WDLAB_BIN_BUILT.
inline const std::string& wdlab_bin() {
  static const std::string path = [] {
    std::error_code ec;
    const auto here = std::filesystem::read_symlink("/proc/self/exe", ec);
    if (!ec && std::filesystem::exists(here.parent_path() / "wdlab")) return (here.parent_path() / "wdlab").string();
    return std::string(WDLAB_BIN_BUILT);
  }();
  return path;
}
}  // namespace
#define WDLAB_BIN wdlab_bin()
#include "run_command.hpp"

using wdlab::cuda::testing::require_gpu_or_skip;
using wdlab::test::run_wdlab;

namespace {

struct Result {
  int pass = 0, kfac = 0;  // kfac: passed K-FAC lines (factors, inverses, updates, kfac_* metrics)
  std::set<std::string> cases;
};

/// Runs a crosscheck as JSON and checks that every comparison is PASS.
Result check_all(const std::string& args) {
  const auto r = run_wdlab("crosscheck --a reference-double --b cuda --format json " + args);
  INFO(args << "\n" << r.err);
  REQUIRE((r.rc == 0 || r.rc == 1));
  const auto j = nlohmann::json::parse(r.out);
  Result res;
  for (const auto& c : j["comparisons"]) {
    INFO(c.dump());
    const std::string status = c["status"];
    res.cases.insert(c["case"].get<std::string>());
    CHECK(status == "PASS");
    if (status != "PASS") continue;
    ++res.pass;
    const std::string q = c["quantity"];
    if (q == "kfac_factor" || q == "damped_inverse" || q == "preconditioned" ||
        (q == "metric" && c["tensor"].get<std::string>().find("kfac_") != std::string::npos))
      ++res.kfac;
  }
  CHECK(j["failed"] == 0);
  CHECK(j["missing"] == 0);
  CHECK(j["unsupported"] == 0);
  return res;
}

}  // namespace

TEST_CASE("gpu crosscheck: every layer kind alone and both losses match the double reference") {
  require_gpu_or_skip();
  const auto r = check_all("--layers");
  CHECK(r.pass > 100);
  CHECK(r.kfac > 10);  // kfc.A and kfc.S of every dense and conv case
  std::vector<std::string> kinds;  // the enums' lists, so a new layer or loss kind is looked for too
  for (wdlab::LayerKind k : wdlab::all_layer_kinds) kinds.push_back(wdlab::to_string(k));
  for (wdlab::xcheck::LossKind k : wdlab::xcheck::all_loss_kinds) kinds.push_back(wdlab::xcheck::to_string(k));
  for (const std::string& kind : kinds) {
    bool seen = false;
    for (const auto& c : r.cases) seen = seen || c.rfind(kind, 0) == 0;
    CHECK_MESSAGE(seen, kind);
  }
}

TEST_CASE("gpu crosscheck: whole-network passes (MLP, convnet, VGG16, ResNet32x4, with BN) match the double reference") {
  require_gpu_or_skip();
  // Small widths: the double reference's K-FAC inverses of every layer run on the CPU.
  const auto r = check_all("--network mlp-bn,convnet-bn,vgg16-bn,resnet32x4-bn --width-mult 0.125 --batch 4");
  CHECK(r.cases.size() == 4);
  CHECK(r.pass > 200);
  CHECK(r.kfac > 100);  // every block: A, S, inverses, updates, traces, for K-FAC-F and K-FAC-G
}

TEST_CASE("gpu crosscheck exact mode: integer layer cases bit for bit on the float32 path") {
  require_gpu_or_skip();
  const auto r = run_wdlab("crosscheck --exact --a reference-double --b cuda --format json");
  INFO(r.err);
  REQUIRE(r.rc == 0);
  const auto j = nlohmann::json::parse(r.out);
  int exact = 0;
  for (const auto& c : j["comparisons"]) {
    INFO(c.dump());
    CHECK(c["status"] == "PASS");
    if (c["tol_kind"] != "exact_integer") continue;
    ++exact;
    CHECK(c["rel_fro"] == 0.0);
  }
  CHECK(exact > 50);
  // Control: a one-ulp-sized change of one tensor fails the exact tolerance.
  const auto p = run_wdlab("crosscheck --exact --a reference-double --b cuda --only 'dense in 7x1x1' --perturb fwd --perturb-rel 1e-7");
  CHECK(p.rc == 1);
}

TEST_CASE("gpu crosscheck negative control: a perturbed cuda side fails") {
  require_gpu_or_skip();
  const auto p = run_wdlab("crosscheck --a reference-double --b cuda --only 'dense in 7x1x1' --perturb 'grad fc.weight'");
  INFO(p.out << p.err);
  CHECK(p.rc == 1);
  CHECK(p.out.find("FAIL        dense in 7x1x1") != std::string::npos);
}

// `wdlab crosscheck` as a user meets it: lines of evidence, exit codes, JSON, the cuda side's
// one-line refusal where it cannot run.
#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <sstream>

#include "run_command.hpp"

using wdlab::test::run_wdlab;

namespace {
int count_lines(const std::string& s, const std::string& prefix) {
  std::istringstream in(s);
  int n = 0;
  for (std::string line; std::getline(in, line);) n += line.rfind(prefix, 0) == 0;
  return n;
}
}  // namespace

TEST_CASE("crosscheck --layers: float against double, one PASS line per comparison, exit 0") {
  const auto r = run_wdlab("crosscheck --layers --only conv2d");
  INFO(r.out << r.err);
  CHECK(r.rc == 0);
  CHECK(count_lines(r.out, "PASS") >= 7 * 4);
  CHECK(count_lines(r.out, "FAIL") == 0);
  CHECK(r.out.find("tol 1.0e-05 (float32_op)") != std::string::npos);
  CHECK(r.out.find(": PASS") != std::string::npos);
}

TEST_CASE("crosscheck negative control: --perturb makes the named tensor FAIL and the exit code 1") {
  const auto r = run_wdlab("crosscheck --only 'dense in 7x1x1' --perturb 'grad fc.weight'");
  INFO(r.out << r.err);
  CHECK(r.rc == 1);
  CHECK(count_lines(r.out, "FAIL") == 1);
  std::istringstream in(r.out);
  for (std::string line; std::getline(in, line);)
    if (line.rfind("FAIL", 0) == 0) CHECK(line.find("grad fc.weight") != std::string::npos);
}

TEST_CASE("crosscheck --exact: reference double against the direct loops, bit for bit") {
  const auto r = run_wdlab("crosscheck --exact --a reference-double --b direct --format json");
  INFO(r.err);
  REQUIRE(r.rc == 0);
  const auto j = nlohmann::json::parse(r.out);
  CHECK(j["pass"] == true);
  CHECK(j["failed"] == 0);
  for (const auto& c : j["comparisons"]) {
    CHECK(c["tol_kind"] == "exact_integer");
    CHECK(c["rel_fro"] == 0.0);
  }
}

TEST_CASE("crosscheck --optimizer: one step of K-FAC-G on a small VGG16, float against double") {
  const auto r = run_wdlab("crosscheck --network vgg16-bn --optimizer kfac-g --steps 1 --width-mult 0.0625 --batch 2");
  INFO(r.out << r.err);
  CHECK(r.rc == 0);
  CHECK(r.out.find("after optim.kfac.A_inv.features.0") != std::string::npos);
}

TEST_CASE("crosscheck --b cuda where it cannot run: one line on stderr, exit 2") {
  const auto r = run_wdlab("crosscheck --b cuda --only relu");
  INFO(r.out << r.err);
  if (r.rc == 0) {
    MESSAGE("a CUDA side ran here: nothing to check about its refusal");
    return;
  }
  CHECK(r.rc == 2);
  CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
  CHECK(r.err.find("cuda: ") != std::string::npos);
  // Without the backend built: says so; built without a GPU: the no-GPU reason.
  CHECK((r.err.find("not built") != std::string::npos || r.err.find("no usable CUDA device") != std::string::npos ||
         r.err.find("no crosscheck side") != std::string::npos));
}

TEST_CASE("crosscheck --exact with a float32 side: reference-float matches bit for bit, cuda needs a GPU") {
  // Integer sums below 2^24 are exact in float32 too: the float engine passes the exact mode.
  const auto f = run_wdlab("crosscheck --exact --a reference-double --b reference-float --format json");
  INFO(f.err);
  REQUIRE(f.rc == 0);
  const auto j = nlohmann::json::parse(f.out);
  CHECK(j["pass"] == true);
  for (const auto& c : j["comparisons"])
    if (c["tol_kind"] == "exact_integer") CHECK(c["rel_fro"] == 0.0);
  // The cuda side is accepted in exact mode: without a GPU it fails at start for that reason.
  for (const char* args : {"crosscheck --exact --b cuda", "crosscheck --exact --a cuda --b direct"}) {
    const auto r = run_wdlab(args);
    INFO(args << "\n" << r.out << r.err);
    if (r.rc == 0) continue;  // a GPU ran it and it passed
    CHECK(r.rc == 2);
    CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
    CHECK(r.err.find("--exact is not supported") == std::string::npos);
    CHECK((r.err.find("no usable CUDA device") != std::string::npos || r.err.find("not built") != std::string::npos));
    CHECK(r.out.empty());
  }
}

TEST_CASE("crosscheck --coverage says what the cuda side compares and leaves out") {
  const auto r = run_wdlab("crosscheck --coverage");
  CHECK(r.rc == 0);
  CHECK(r.out.find("side cuda network cases:   K-FAC-F (same sampled targets) and K-FAC-G (same probes)") !=
        std::string::npos);
  CHECK(r.out.find("NOT COMPARED") == std::string::npos);
  CHECK(r.out.find("side cuda exact mode:      the integer layer cases on the float32 path") != std::string::npos);
}

TEST_CASE("crosscheck --coverage lists uncovered metrics, and bad options exit 2") {
  const auto r = run_wdlab("crosscheck --coverage");
  CHECK(r.rc == 0);
  CHECK(r.out.find("metric    gen_gap                NO CASE") != std::string::npos);
  // --coverage selects every optimizer on one network: sgd, adam, kfac-f, kfac-g, lion.
  CHECK(r.out.find("metric    jac_norm, jac_norm_est 5 optimizer case(s)") != std::string::npos);
  CHECK(r.out.find("optimizer lion                   1 case(s)") != std::string::npos);
  CHECK(r.out.find("layer     maxpool                NO CASE") == std::string::npos);
  for (const char* bad : {"crosscheck --network nope", "crosscheck --optimizer lbfgs", "crosscheck --b nope --only relu",
                          "crosscheck --exact --network mlp", "crosscheck --format xml"})
    CHECK_MESSAGE(run_wdlab(bad).rc == 2, bad);
}

TEST_CASE("crosscheck: an error inside one case is one FAIL line with its message, the other cases still run") {
  // WDLAB_FAULT_CROSSCHECK_ERROR (common/fault.hpp) throws a DeviceError inside the cases whose
  // name holds the substring, as a failing cuDNN call would. "N2" selects six layer cases, one
  // of them relu's.
  const auto clean = run_wdlab("crosscheck --layers --only N2");
  REQUIRE(clean.rc == 0);
  const auto relu_only = run_wdlab("crosscheck --layers --only relu");
  REQUIRE(relu_only.rc == 0);
  const int passes = count_lines(clean.out, "PASS"), relu_passes = count_lines(relu_only.out, "PASS");
  REQUIRE(relu_passes >= 2);
  REQUIRE(passes > relu_passes);
  const auto r = run_wdlab("crosscheck --layers --only N2", "WDLAB_FAULT_CROSSCHECK_ERROR=relu");
  INFO(r.out << r.err);
  CHECK(r.rc == 1);
  CHECK(count_lines(r.out, "FAIL") == 1);  // the relu case, once, with the library's message
  CHECK(r.out.find("error: injected: cuDNN status 3") != std::string::npos);
  CHECK(count_lines(r.out, "PASS") == passes - relu_passes);  // every other case compared
  CHECK(r.out.find(": FAIL") != std::string::npos);           // the closing summary was reached
  // Control: a substring matching no case leaves the run as it was.
  const auto none = run_wdlab("crosscheck --layers --only N2", "WDLAB_FAULT_CROSSCHECK_ERROR=no-such-case");
  CHECK(none.rc == 0);
  CHECK(count_lines(none.out, "PASS") == passes);
}

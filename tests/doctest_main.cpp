// doctest's main, with one guard: a run whose --test-case filter selects no test exits 1 instead
// of 0. ctest runs each case by name, so a case name that ctest cannot pass through intact (a ';'
// splits it) would otherwise "pass" without running anything.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdio>
#include <cstring>

#include "common/cpu_runtime.hpp"

namespace {

struct CountingReporter : doctest::IReporter {
  static inline int started = 0;
  explicit CountingReporter(const doctest::ContextOptions&) {}
  void report_query(const doctest::QueryData&) override {}
  void test_run_start() override {}
  void test_run_end(const doctest::TestRunStats&) override {}
  void test_case_start(const doctest::TestCaseData&) override { ++started; }
  void test_case_reenter(const doctest::TestCaseData&) override {}
  void test_case_end(const doctest::CurrentTestCaseStats&) override {}
  void test_case_exception(const doctest::TestCaseException&) override {}
  void subcase_start(const doctest::SubcaseSignature&) override {}
  void subcase_end() override {}
  void log_assert(const doctest::AssertData&) override {}
  void log_message(const doctest::MessageData&) override {}
  void test_case_skipped(const doctest::TestCaseData&) override {}
};

}  // namespace

DOCTEST_REGISTER_LISTENER("wdlab_counting", 1, CountingReporter);

int main(int argc, char** argv) {
  // The BLAS threads as a command would set them without --threads (ctest sets WDLAB_THREADS=1:
  // it runs tests side by side, one core each).
  wdlab::set_cpu_threads(0);
  doctest::Context ctx(argc, argv);
  const int rc = ctx.run();
  if (ctx.shouldExit()) return rc;  // --help, --list-test-cases, ...
  bool filtered = false;
  for (int i = 1; i < argc; ++i)
    filtered |= std::strncmp(argv[i], "--test-case=", 12) == 0 || std::strncmp(argv[i], "-tc=", 4) == 0;
  if (rc == 0 && filtered && CountingReporter::started == 0) {
    std::fprintf(stderr, "wdlab: the --test-case filter selected no test case\n");
    return 1;
  }
  return rc;
}

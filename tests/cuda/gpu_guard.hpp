#pragma once
// For GPU test cases: return when a usable device is there; exit 77 (ctest: skipped) when the
// machine has no GPU; fail when a GPU is there but unusable (broken driver, wrong architecture),
// so a GPU machine never reports "skipped" for a problem that should be fixed.
// Exiting is for test code only (library code throws). ctest runs each test case in its own
// process (--test-case=...), so the exit ends just that case; doctest's --list-test-cases, run at
// build time, runs no case and needs no GPU.
#include <doctest/doctest.h>

#include <cstdio>
#include <cstdlib>

#include "cuda/device_query.hpp"

namespace wdlab::cuda::testing {

inline constexpr int kSkipExitCode = 77;  // SKIP_RETURN_CODE in tests/wdlab_test.cmake

inline void require_gpu_or_skip() {
  const DeviceStatus status = query_devices();
  if (status.usable) return;
  if (no_gpu_present(status)) {
    std::fprintf(stderr, "SKIPPED (exit %d): %s\n", kSkipExitCode, status.reason.c_str());
    std::fflush(stderr);
    std::exit(kSkipExitCode);
  }
  FAIL("a GPU is present but unusable: " << status.reason);
}

}  // namespace wdlab::cuda::testing

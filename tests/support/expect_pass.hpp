#pragma once
// Prints a comparison's evidence and checks that it passes (a macro, so a failure names the
// caller's line).
#include <doctest/doctest.h>

#include "common/compare.hpp"

#define WDLAB_EXPECT_PASS(comparison)            \
  do {                                           \
    const ::wdlab::Comparison c_ = (comparison); \
    MESSAGE(c_.line());                          \
    CHECK(c_.pass);                              \
  } while (0)

#pragma once
// `wdlab theory --random N`: networks drawn from the full documented option ranges, and the
// shrinking of a failing one to the smallest failing network that a greedy search finds.
#include <cstdint>
#include <functional>
#include <string>

#include "theory/suite.hpp"

namespace wdlab::theory {

/// Network `index` of the stream `seed`: one depth (1..8), width (1..64), input dim (1..64),
/// classes (2..32), batch (2..512) and network seed, each from the theory RNG. Sizes are drawn
/// log-uniformly (every value reachable, small and large equally often per octave); the suite
/// then runs every check on the linear, ReLU and BN variants of that network.
SuiteOptions draw_network(std::uint64_t seed, int index);

/// The exact `wdlab theory` command line that runs these (single-valued) options, with --only
/// when they have it.
std::string reproduce_command(const SuiteOptions& o);

/// Greedy shrinking: repeatedly tries fewer layers, a narrower width, fewer inputs, classes and
/// examples (halving, then decrementing), keeping any candidate for which `fails` is still
/// true, until no candidate fails. `fails(o)` must be true for `o` itself.
SuiteOptions shrink(const SuiteOptions& failing, const std::function<bool(const SuiteOptions&)>& fails);

/// The suite's verdict on one network as a predicate for shrink(): some row that ran did not
/// have its expected outcome (skipped rows are judged over the whole --random run instead).
bool suite_fails(const SuiteOptions& o);

}  // namespace wdlab::theory

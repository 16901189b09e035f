// Random networks for `wdlab theory --random` and the shrinking of a failing one.
#include "theory/random_networks.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

#include <fmt/format.h>

#include "common/philox.hpp"

namespace wdlab::theory {

namespace {

/// An integer in [lo, hi], log-uniform: exp(U(log lo, log(hi + 1))) rounded down.
int log_uniform(std::uint64_t seed, int index, int field, int lo, int hi) {
  const double u = rng::uniform(seed, rng::Purpose::theory, 500000 + std::uint64_t(index), std::uint64_t(field));
  const int v = int(std::floor(std::exp(std::log(double(lo)) + u * (std::log(double(hi) + 1) - std::log(double(lo))))));
  return std::clamp(v, lo, hi);
}

}  // namespace

SuiteOptions draw_network(std::uint64_t seed, int index) {
  SuiteOptions o;
  o.extensions = Extensions::off;  // they do not depend on the network
  o.depths = {1 + int(rng::below(seed, rng::Purpose::theory, 500000 + std::uint64_t(index), 10, 8))};
  o.widths = {1 + int(rng::below(seed, rng::Purpose::theory, 500000 + std::uint64_t(index), 12, 64))};
  o.input_dim = log_uniform(seed, index, 2, 1, 64);
  o.classes = log_uniform(seed, index, 3, 2, 32);
  o.batch = log_uniform(seed, index, 4, 2, 512);
  o.seeds = {rng::below(seed, rng::Purpose::theory, 500000 + std::uint64_t(index), 11, 1000000)};
  return o;
}

std::string reproduce_command(const SuiteOptions& o) {
  return fmt::format("wdlab theory --seeds {} --depths {} --widths {} --input-dim {} --classes {} --batch {}{}",
                     o.seeds.at(0), o.depths.at(0), o.widths.at(0), o.input_dim, o.classes, o.batch,
                     o.only.empty() ? "" : " --only " + o.only);
}

SuiteOptions shrink(const SuiteOptions& failing, const std::function<bool(const SuiteOptions&)>& fails) {
  SuiteOptions cur = failing;
  // Candidates smaller than cur in one field: halved first (big steps), then one less.
  auto candidates = [](const SuiteOptions& o) {
    std::vector<SuiteOptions> c;
    auto add = [&](auto set, int now, int lo) {
      for (int v : {std::max(lo, now / 2), now - 1})
        if (v >= lo && v < now) {
          SuiteOptions n = o;
          set(n, v);
          c.push_back(n);
        }
    };
    add([](SuiteOptions& n, int v) { n.depths = {v}; }, o.depths.at(0), 1);
    add([](SuiteOptions& n, int v) { n.widths = {v}; }, o.widths.at(0), 1);
    add([](SuiteOptions& n, int v) { n.input_dim = v; }, o.input_dim, 1);
    add([](SuiteOptions& n, int v) { n.classes = v; }, o.classes, 2);
    add([](SuiteOptions& n, int v) { n.batch = v; }, o.batch, 2);
    return c;
  };
  for (bool progress = true; progress;) {
    progress = false;
    for (const auto& c : candidates(cur))
      if (fails(c)) {
        cur = c;
        progress = true;
        break;
      }
  }
  return cur;
}

bool suite_fails(const SuiteOptions& o) { return summarize(run_suite(o)).unexpected > 0; }

}  // namespace wdlab::theory

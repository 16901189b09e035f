// The default suite of `wdlab theory`: every row passes and every id is exercised.
#include <doctest/doctest.h>

#include <cmath>
#include <set>

#include "common/errors.hpp"
#include "common/tolerances.hpp"
#include "theory/random_networks.hpp"
#include "theory/suite.hpp"

using namespace wdlab;
using namespace wdlab::theory;

TEST_CASE("default suite: every row has its expected outcome and every id appears") {
  const auto rows = run_suite(SuiteOptions{});
  std::set<std::string> seen;
  int controls = 0;
  for (const auto& r : rows) {
    INFO(r.id, " ", r.network, " rel_err=", r.rel_err, " tol=", r.tol);
    CHECK(r.pass());
    seen.insert(r.id);
    controls += r.expect == Outcome::fails;
  }
  for (const auto& id : all_ids()) {
    INFO("id never ran: ", id);
    CHECK(seen.count(id) == 1);
  }
  CHECK(controls >= 3);
}

TEST_CASE("--only runs just the matching ids, several seeds give several rows") {
  SuiteOptions o;
  o.only = "theorem1";
  o.depths = {1, 2};
  o.seeds = {1, 2};
  const auto rows = run_suite(o);
  CHECK(rows.size() == 2 * 2 * 3);  // seeds × depths × (gn, kfac, unwhitened)
  for (const auto& r : rows) CHECK(r.id.rfind("theorem1", 0) == 0);
}

TEST_CASE("suite options are validated with the option's name") {
  auto bad = [](auto mutate, const char* field) {
    SuiteOptions o;
    mutate(o);
    try {
      o.validate();
      FAIL("accepted a bad ", field);
    } catch (const UsageError& e) {
      CHECK(std::string(e.what()).find(field) != std::string::npos);
    }
  };
  bad([](SuiteOptions& o) { o.depths = {-1}; }, "--depths");
  bad([](SuiteOptions& o) { o.widths = {0}; }, "--widths");
  bad([](SuiteOptions& o) { o.batch = 1; }, "--batch");
  bad([](SuiteOptions& o) { o.classes = 1; }, "--classes");
  bad([](SuiteOptions& o) { o.only = "nonsense"; }, "--only");
  bad([](SuiteOptions& o) { o.seeds.clear(); }, "--seeds");
}

TEST_CASE("every tolerance kind has an entry with a reason") {
  for (tol::Kind k : tol::all_kinds) {  // all 14, not the 6 the theory checks use
    INFO(tol::name(k));
    CHECK(tol::entry(k).kind == k);
    CHECK(tol::entry(k).reason.size() > 20);
  }
}

TEST_CASE("--random: draws stay in the documented ranges and reach both ends") {
  int min_depth = 9, max_depth = 0, min_width = 65, max_width = 0, max_batch = 0;
  for (int i = 0; i < 2000; ++i) {
    const auto o = draw_network(5, i);
    CHECK_NOTHROW(o.validate());
    REQUIRE(o.depths.size() == 1);
    REQUIRE(o.widths.size() == 1);
    min_depth = std::min(min_depth, o.depths[0]);
    max_depth = std::max(max_depth, o.depths[0]);
    min_width = std::min(min_width, o.widths[0]);
    max_width = std::max(max_width, o.widths[0]);
    max_batch = std::max(max_batch, o.batch);
  }
  CHECK(min_depth == 1);
  CHECK(max_depth == 8);
  CHECK(min_width == 1);
  CHECK(max_width == 64);
  CHECK(max_batch > 400);
  CHECK(draw_network(5, 7).widths == draw_network(5, 7).widths);  // reproducible
}

TEST_CASE("shrinking: an injected failure shrinks to the smallest failing network and its command") {
  SuiteOptions big;
  big.depths = {8};
  big.widths = {60};
  big.seeds = {42};
  big.input_dim = 40;
  big.classes = 20;
  big.batch = 300;
  // Injected: "fails" whenever depth >= 3 and width >= 5 (independent of the other fields).
  int calls = 0;
  const auto small = shrink(big, [&](const SuiteOptions& o) {
    ++calls;
    return o.depths[0] >= 3 && o.widths[0] >= 5;
  });
  CHECK(small.depths[0] == 3);
  CHECK(small.widths[0] == 5);
  CHECK(small.input_dim == 1);
  CHECK(small.classes == 2);
  CHECK(small.batch == 2);
  CHECK(calls < 200);
  CHECK(reproduce_command(small) ==
        "wdlab theory --seeds 42 --depths 3 --widths 5 --input-dim 1 --classes 2 --batch 2");
  // A network that passes is never reported: shrink keeps the input if nothing smaller fails.
  const auto same = shrink(big, [&](const SuiteOptions& o) { return o.depths[0] == 8 && o.widths[0] == 60 &&
                                                                    o.input_dim == 40 && o.classes == 20 &&
                                                                    o.batch == 300; });
  CHECK(reproduce_command(same) == reproduce_command(big));
}

TEST_CASE("summary: skipped rows count, >= 5% skipped fails the suite, unexpected rows fail it") {
  std::vector<CheckRecord> rows(40);
  for (auto& r : rows) r.outcome = r.expect = Outcome::holds;
  CHECK(summarize(rows).ok());
  rows[0].outcome = Outcome::skipped;
  auto s = summarize(rows);
  CHECK(s.skipped == 1);
  CHECK(s.unexpected == 0);
  CHECK(s.ok());  // 1/40 = 2.5%
  rows[1].outcome = Outcome::skipped;
  CHECK_FALSE(summarize(rows).ok());  // 2/40 = 5%
  rows[1].outcome = Outcome::fails;
  s = summarize(rows);
  CHECK(s.unexpected == 1);
  CHECK_FALSE(s.ok());
}

TEST_CASE("the issue's networks: no row skipped beyond 5%, none unexpected, no NaN") {
  auto grid = [](std::vector<std::uint64_t> seeds, std::vector<int> depths, std::vector<int> widths) {
    SuiteOptions o;
    o.seeds = std::move(seeds);
    o.depths = std::move(depths);
    o.widths = std::move(widths);
    o.extensions = Extensions::off;
    return o;
  };
  for (const auto& o : {grid({3}, {1, 3, 6}, {2}), grid({5, 6, 7}, {2, 4}, {3})}) {
    const auto rows = run_suite(o);
    const auto s = summarize(rows);
    for (const auto& r : rows) {
      INFO(r.id, " ", r.network, " rel_err=", r.rel_err, " tol=", r.tol, " ", r.reason);
      CHECK(std::isfinite(r.rel_err));
      CHECK(std::isfinite(r.lhs));
      CHECK(std::isfinite(r.rhs));
      if (!r.skipped()) CHECK(r.pass());
    }
    CHECK(s.ok());
  }
}

// The default suite of `wdlab theory`: every row passes and every id is exercised.
#include <doctest/doctest.h>

#include <set>

#include "common/errors.hpp"
#include "common/tolerances.hpp"
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
  for (tol::Kind k : {tol::Kind::exact_double, tol::Kind::exact_integer, tol::Kind::finite_difference,
                      tol::Kind::order_eta2, tol::Kind::monte_carlo_slope, tol::Kind::float_forward}) {
    CHECK(tol::entry(k).kind == k);
    CHECK(tol::entry(k).reason.size() > 20);
  }
}

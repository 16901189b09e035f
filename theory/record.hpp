#pragma once
// A checked statement of the paper: both sides, their relative error, the tolerance, and whether
// the statement was expected to hold (a negative control is expected to fail).
#include <string>
#include <vector>

#include <Eigen/Core>

#include "common/tolerances.hpp"

namespace wdlab::theory {

/// skipped: a precondition of the check does not hold on this network (e.g. no finite-difference
/// step fits between the ReLU kinks); the row says why in `reason` and counts as neither.
enum class Outcome { holds, fails, skipped };
std::string to_string(Outcome o);

struct CheckRecord {
  std::string id;         // stable name, e.g. "lemma1.jx"
  std::string paper_ref;  // e.g. "Lemma 1, Eq. 10"
  std::string statement;  // the identity, in words/symbols
  std::string network;    // MlpSpec::describe() plus the case (layer, α, ...)
  double lhs = 0, rhs = 0;
  double rel_err = 0;
  double tol = 0;
  tol::Kind tol_kind = tol::Kind::exact_double;
  /// > 0: the tolerance derived from this computation (error estimates, magnitudes); finish()
  /// uses it instead of the table's value for tol_kind. `tol_basis` says how it was derived.
  double derived_tol = 0;
  std::string tol_basis;
  std::string reason;  // why the row was skipped ("" otherwise)
  double seconds = 0;  // wall time of the check (set by run_suite)
  Outcome expect = Outcome::holds;
  Outcome outcome = Outcome::fails;
  bool pass() const { return outcome == expect; }
  bool skipped() const { return outcome == Outcome::skipped; }
};

/// Fills rel_err's verdict: holds iff rel_err ≤ tol (NaN never holds).
CheckRecord finish(CheckRecord r);

/// A row for a check whose precondition failed on this network: outcome skipped, the reason.
CheckRecord skipped_row(std::string id, std::string network, Outcome expect, std::string reason);

/// |a − b| / |b|, with 0 when both are exactly 0 and |a − b|/|a| when only b is 0 (never NaN).
double rel_scalar(double a, double b);

/// For a vector identity lhs = rhs: records ‖lhs‖, ‖rhs‖ and ‖lhs − rhs‖/‖rhs‖, then finish().
CheckRecord finish_vectors(CheckRecord r, const Eigen::MatrixXd& lhs, const Eigen::MatrixXd& rhs);

}  // namespace wdlab::theory

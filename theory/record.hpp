#pragma once
// A checked statement of the paper: both sides, their relative error, the tolerance, and whether
// the statement was expected to hold (a negative control is expected to fail).
#include <string>
#include <vector>

#include <Eigen/Core>

#include "common/tolerances.hpp"

namespace wdlab::theory {

enum class Outcome { holds, fails };
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
  Outcome expect = Outcome::holds;
  Outcome outcome = Outcome::fails;
  bool pass() const { return outcome == expect; }
};

/// Fills rel_err's verdict: holds iff rel_err ≤ tol (NaN never holds).
CheckRecord finish(CheckRecord r);

/// For a vector identity lhs = rhs: records ‖lhs‖, ‖rhs‖ and ‖lhs − rhs‖/‖rhs‖, then finish().
CheckRecord finish_vectors(CheckRecord r, const Eigen::MatrixXd& lhs, const Eigen::MatrixXd& rhs);

}  // namespace wdlab::theory

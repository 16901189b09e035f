#pragma once
// The one comparison printer of the crosscheck: every compared tensor becomes one line with its
// evidence (STYLE.md #10): case, tensor, shape, relative Frobenius error ‖b − a‖/‖a‖, max abs
// error and its multi-index, non-finite count, tolerance (from common/tolerances.hpp, by
// quantity and precision), margin tol/rel, and the sides' notes (e.g. the algorithm a backend
// chose). A tensor one side has and the other lacks is a MISSING line (with the lacking side's
// reason where it gives one, Side::why_missing); a case a side cannot run is UNSUPPORTED; both
// count as failures.
#include <array>
#include <cstddef>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "apps/crosscheck/cases.hpp"
#include "apps/crosscheck/side.hpp"
#include "apps/crosscheck/tensors.hpp"
#include "common/tolerances.hpp"

namespace wdlab::xcheck {

enum class Status { pass, fail, missing, unsupported };
/// Every Status, in declaration order (Summary counts each; the tests loop over it).
inline constexpr std::array<Status, 4> all_statuses{Status::pass, Status::fail, Status::missing, Status::unsupported};
static_assert(all_statuses.size() == std::size_t(Status::unsupported) + 1, "all_statuses must list every Status");
std::string to_string(Status s);

struct Line {
  Status status = Status::fail;
  std::string case_name, tensor, shape, where, note, message;
  Quantity quantity = Quantity::activation;
  std::size_t size = 0, nonfinite = 0;
  double rel_fro = 0, max_abs = 0, tol = 0;
  bool scaled = false;  // rel_fro is relative to side a's scale (tensors.hpp), not to ‖a‖
  tol::Kind tol_kind = tol::Kind::exact_double;
  double margin() const;  // tol / rel_fro (inf when rel_fro = 0)
};

/// The tolerance of one quantity of a case, given the precisions of the two sides: integer
/// inputs → exact_integer; both double → exact_double; otherwise the float32 row for the case's
/// kind and the quantity.
tol::Kind tolerance_kind(const Case& c, Quantity q, Precision a, Precision b);

/// Compares every tensor of `a` (the reference side) with the same-named tensor of `b`; a tensor
/// of either side without a same-named one on the other is a MISSING line.
std::vector<Line> compare_tensors(const Case& c, const Tensors& a, const Tensors& b, Precision pa, Precision pb);
/// A case that threw a library error (cuDNN, cuSOLVER, a numeric failure): one FAIL line, its
/// tensor "*", the message "error: <what>".
Line error_line(const Case& c, const std::string& what);
Line unsupported_line(const Case& c, const std::string& why);

/// One line of text per comparison (the table format).
std::string format_line(const Line& l);
nlohmann::ordered_json to_json(const Line& l);

struct Summary {
  int pass = 0, fail = 0, missing = 0, unsupported = 0;
  int failures() const { return fail + missing + unsupported; }
  void add(const Line& l);
  std::string describe() const;
};

}  // namespace wdlab::xcheck

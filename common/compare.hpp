#pragma once
// Every comparison prints its evidence: relative Frobenius error, max abs difference and where,
// non-finite count, tolerance and margin (llm.c check_tensor, ggml test-backend-ops).
#include <cstddef>
#include <span>
#include <string>

#include "common/tolerances.hpp"

namespace wdlab {

struct Comparison {
  std::string name;
  std::size_t size = 0;
  double rel_fro = 0;       // ‖x − ref‖_F / ‖ref‖_F (‖x − ref‖_F when ‖ref‖_F = 0)
  double max_abs = 0;       // max_i |x_i − ref_i|
  std::size_t argmax = 0;   // i at which max_abs is attained
  std::size_t nonfinite = 0;
  double tol = 0;
  bool pass = false;
  /// tol / rel_fro: how many times over the error could grow before failing (inf if exact).
  double margin() const;
  std::string line() const;  // one printable line of evidence
};

Comparison compare(std::string name, std::span<const double> x, std::span<const double> ref,
                   tol::Kind kind);
Comparison compare(std::string name, std::span<const double> x, std::span<const double> ref,
                   double tol);

}  // namespace wdlab

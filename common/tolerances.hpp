#pragma once
// The one tolerance table of wdlab. Every comparison looks its tolerance up here by kind; each
// entry says why it has the value it has. Tests and checks never write tolerances as literals.
#include <array>
#include <string_view>

namespace wdlab::tol {

enum class Kind {
  exact_double,        // identity exact in real arithmetic, evaluated in double
  exact_integer,       // integer-valued inputs: any difference is a bug
  finite_difference,   // central differences against an analytic derivative, double
  order_eta2,          // an O(η²) remainder: error/η² must stay bounded as η shrinks
  monte_carlo_slope,   // fitted log-log slope of Monte-Carlo error against sample size
  float_forward,       // float32 vs double forward activations of a small net
};

struct Entry {
  Kind kind;
  double value;
  std::string_view reason;
};

inline constexpr std::array<Entry, 6> table{{
    {Kind::exact_double, 1e-10,
     "each side is a sum of at most ~1e5 products of O(1) doubles; rounding gives ~1e-14 "
     "relative, and 1e-10 still separates a wrong identity (errors >= 1e-3 in our controls)"},
    {Kind::exact_integer, 0.0,
     "inputs and weights are small integers, every partial sum is an exactly representable "
     "integer, so any summation order gives the same bits"},
    {Kind::finite_difference, 1e-6,
     "central differences with h = 1e-5 relative: truncation O(h^2) ~ 1e-10, rounding "
     "O(eps/h) ~ 1e-11; 1e-6 leaves room for third derivatives of size ~1e3"},
    {Kind::order_eta2, 0.5,
     "error/eta^2 converges to the second-order coefficient; between eta and eta/100 it may "
     "drift by O(eta) relative, so a change above 50% means the remainder is not O(eta^2)"},
    {Kind::monte_carlo_slope, 0.15,
     "the RMS error over 8 replications at n = 1e2, 1e3, 1e4 has slope -1/2 in log-log; the "
     "sampling noise of the fitted slope is ~0.05, so 0.15 is three standard deviations"},
    {Kind::float_forward, 1e-5,
     "float32 has eps 6e-8; a forward pass of depth <= 6 with width <= 1000 accumulates "
     "~sqrt(width)*depth*eps relative error"},
}};

constexpr const Entry& entry(Kind k) {
  for (const auto& e : table)
    if (e.kind == k) return e;
  return table[0];  // unreachable: every Kind has an entry (tests enumerate them)
}
constexpr double of(Kind k) { return entry(k).value; }

}  // namespace wdlab::tol

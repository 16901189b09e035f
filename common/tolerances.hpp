#pragma once
// The one tolerance table of wdlab. Every comparison looks its tolerance up here by kind; each
// entry says why it has the value it has. Tests and checks never write tolerances as literals.
#include <array>
#include <cstddef>
#include <string_view>

namespace wdlab::tol {

enum class Kind {
  exact_double,        // identity exact in real arithmetic, evaluated in double
  exact_integer,       // integer-valued inputs: any difference is a bug
  finite_difference,   // central differences against an analytic derivative, double
  order_eta2,          // an O(η²) remainder: error/η² must stay bounded as η shrinks
  monte_carlo_slope,   // fitted log-log slope of Monte-Carlo error against sample size
  float_forward,       // float32 vs double forward activations of a small net
  monte_carlo_z,       // |z| of a Monte-Carlo mean against its expectation, in standard errors
  float_kernel,        // one CUDA kernel body (host launcher, float32) vs the double reference
  float32_op,          // crosscheck: one layer or loss alone, a float32 side against double
  float32_network,     // crosscheck: activations, gradients, loss of a whole network, float32
  float32_curvature,   // crosscheck: K-FAC factors and mechanism metrics of a whole network
  float32_inverse,     // crosscheck: damped inverses and preconditioned gradients (float32)
  float32_steps,       // crosscheck: parameters and optimizer state after N steps (float32)
  float32_backward_bn, // crosscheck: gradients/curvature of a whole network with BN (float32)
  float32_sign_flips,  // crosscheck: fraction of a sign update's coordinates allowed to flip (Lion)
};

/// Every Kind, in declaration order (tests loop over it; the count is checked against the last one).
inline constexpr std::array<Kind, 15> all_kinds{
    Kind::exact_double,     Kind::exact_integer,     Kind::finite_difference, Kind::order_eta2,
    Kind::monte_carlo_slope, Kind::float_forward,    Kind::monte_carlo_z,     Kind::float_kernel,
    Kind::float32_op,       Kind::float32_network,   Kind::float32_curvature, Kind::float32_inverse,
    Kind::float32_steps,    Kind::float32_backward_bn, Kind::float32_sign_flips};
static_assert(all_kinds.size() == std::size_t(Kind::float32_sign_flips) + 1, "all_kinds must list every Kind");

struct Entry {
  Kind kind;
  double value;
  std::string_view reason;
};

inline constexpr std::array<Entry, 15> table{{
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
    {Kind::monte_carlo_z, 4.0,
     "the mean of M >= 100 independent estimates is normal to a good approximation, so an "
     "unbiased estimator gives |z| > 4 with probability 6e-5; the draws are fixed by the Philox "
     "key, so the outcome is deterministic; a 10% bias at a 1% standard error gives |z| ~ 10"},
    {Kind::float_kernel, 1e-5,
     "each output of a kernel body is a short chain of float32 operations (<= ~20 roundings of "
     "eps 6e-8, sums accumulated in double) on O(1) inputs: ~1e-6 relative at most; an "
     "indexing, stride or formula error moves the result by O(1)"},
    {Kind::float32_op, 1e-5,
     "one op in float32 (eps 6e-8): sums of <= 4608 products give ~sqrt(n)*eps ~ 4e-6 relative; "
     "an indexing, stride or padding bug moves whole elements (>= 1e-2 relative)"},
    {Kind::float32_network, 1e-4,
     "VGG16/ResNet32 in float32: ~16-33 layers of rounding, BN divides by batch std (amplifies "
     "by |x|/sigma), cancellation in the first layers' gradients; cuDNN may pick FFT/Winograd"},
    {Kind::float32_curvature, 1e-4,
     "K-FAC factors are means of products of activations/cotangents (their errors), sampled "
     "targets are the same draws; metrics are norms and traces of them"},
    {Kind::float32_inverse, 3e-3,
     "(F + dI)^-1 amplifies the factor's relative error by its condition number, up to "
     "~(trace/dim)/d ~ 1e2-1e3 for lambda = 1e-3..1e-2 and the pi split (measured 3e-4 on the MLP's "
     "preconditioned bias gradient, float32 against double); a K-FAC step's deltas and the metrics "
     "measured after it carry that error (3.2e-4 on ResNet32x4's traces after one K-FAC-G step)"},
    {Kind::float32_steps, 1e-4,
     "N SGD/Adam steps in float32: the update is the gradient (or Adam's ratio of its moments), "
     "so a step's delta and the momentum carry the gradient's relative error (float32_network); "
     "K-FAC's deltas and momentum are preconditioned updates and take float32_inverse"},
    {Kind::float32_backward_bn, 3e-2,
     "backward through 13-31 BN layers with 8-32 entries per channel statistic (batch 8, 2x2 "
     "and 1x1 maps) removes most of each cotangent (dy - mean - xhat*mean(dy*xhat)): float32 "
     "against double measured up to 5e-3 on VGG16-BN and ResNet32x4-BN (width 1/8, batch 8), "
     "1e-6 on the same nets without BN; a wrong index or stride gives O(1)"},
    {Kind::float32_sign_flips, 1e-4,
     "Lion steps by sign(c) per coordinate: where |c| is at the rounding level of its two terms, "
     "float32 and double may take opposite signs and that coordinate moves by 2*lr on one side "
     "only (seen once: 1 coordinate of the MLP's 1,000,000 in 2 steps); a wrong sign rule, beta or "
     "decay flips a large fraction, so at most 1e-4 of the coordinates may differ by a whole "
     "step, the others are compared at float32_steps"},
}};

constexpr std::string_view name(Kind k) {
  switch (k) {
    case Kind::exact_double: return "exact_double";
    case Kind::exact_integer: return "exact_integer";
    case Kind::finite_difference: return "finite_difference";
    case Kind::order_eta2: return "order_eta2";
    case Kind::monte_carlo_slope: return "monte_carlo_slope";
    case Kind::float_forward: return "float_forward";
    case Kind::monte_carlo_z: return "monte_carlo_z";
    case Kind::float_kernel: return "float_kernel";
    case Kind::float32_op: return "float32_op";
    case Kind::float32_network: return "float32_network";
    case Kind::float32_curvature: return "float32_curvature";
    case Kind::float32_inverse: return "float32_inverse";
    case Kind::float32_steps: return "float32_steps";
    case Kind::float32_backward_bn: return "float32_backward_bn";
    case Kind::float32_sign_flips: return "float32_sign_flips";
  }
  return "?";
}

/// The position of k's entry in `table`: a switch without default, so -Wswitch names a Kind
/// added to the enum and not here, and the static_assert below one whose entry is missing.
constexpr std::size_t slot(Kind k) {
  switch (k) {
    case Kind::exact_double: return 0;
    case Kind::exact_integer: return 1;
    case Kind::finite_difference: return 2;
    case Kind::order_eta2: return 3;
    case Kind::monte_carlo_slope: return 4;
    case Kind::float_forward: return 5;
    case Kind::monte_carlo_z: return 6;
    case Kind::float_kernel: return 7;
    case Kind::float32_op: return 8;
    case Kind::float32_network: return 9;
    case Kind::float32_curvature: return 10;
    case Kind::float32_inverse: return 11;
    case Kind::float32_steps: return 12;
    case Kind::float32_backward_bn: return 13;
    case Kind::float32_sign_flips: return 14;
  }
  return table.size();  // not a Kind (a cast integer): entry() does not compile in a constant
}

constexpr bool every_kind_has_its_entry() {
  for (Kind k : all_kinds)
    if (slot(k) >= table.size() || table[slot(k)].kind != k) return false;
  return table.size() == all_kinds.size();
}
static_assert(every_kind_has_its_entry(), "tol::table must hold one entry per Kind, at slot(kind)");

constexpr const Entry& entry(Kind k) { return table.at(slot(k)); }
constexpr double of(Kind k) { return entry(k).value; }

}  // namespace wdlab::tol

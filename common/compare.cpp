#include "common/compare.hpp"

#include <cmath>
#include <limits>

#include <fmt/format.h>

#include "common/errors.hpp"

namespace wdlab {

double Comparison::margin() const {
  if (rel_fro == 0) return std::numeric_limits<double>::infinity();
  return tol / rel_fro;
}

std::string Comparison::line() const {
  return fmt::format("{:<40} n={:<8} rel_fro={:.3e} max_abs={:.3e} @{} nonfinite={} tol={:.1e} "
                     "margin={:.2g} {}",
                     name, size, rel_fro, max_abs, argmax, nonfinite, tol, margin(),
                     pass ? "PASS" : "FAIL");
}

Comparison compare(std::string name, std::span<const double> x, std::span<const double> ref,
                   double tol) {
  if (x.size() != ref.size())
    throw InternalError(fmt::format("compare {}: sizes differ ({} vs {})", name, x.size(),
                                    ref.size()));
  Comparison c;
  c.name = std::move(name);
  c.size = x.size();
  c.tol = tol;
  double diff2 = 0, ref2 = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    if (!std::isfinite(x[i]) || !std::isfinite(ref[i])) {
      ++c.nonfinite;
      continue;
    }
    const double d = x[i] - ref[i];
    diff2 += d * d;
    ref2 += ref[i] * ref[i];
    if (std::abs(d) > c.max_abs) {
      c.max_abs = std::abs(d);
      c.argmax = i;
    }
  }
  c.rel_fro = ref2 > 0 ? std::sqrt(diff2 / ref2) : std::sqrt(diff2);
  c.pass = c.nonfinite == 0 && c.rel_fro <= tol;
  return c;
}

Comparison compare(std::string name, std::span<const double> x, std::span<const double> ref,
                   tol::Kind kind) {
  return compare(std::move(name), x, ref, tol::of(kind));
}

}  // namespace wdlab

#include "common/optim/kfac_policy.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include <fmt/format.h>

#include "common/errors.hpp"

namespace wdlab::optim {

bool kfac_wants_factors(const KfacConfig& c, std::int64_t k) { return (k + 1) % c.t_cov == 0; }

bool kfac_inverses_due(const KfacConfig& c, std::int64_t k, InversesReady ready) {
  return ready == InversesReady::no || k % c.t_inv == 0;
}

SplitDamping pi_split_damping(double trace_a, int dim_a, double trace_s, int dim_s, double lambda,
                              int locations) {
  if (locations < 1) throw InternalError(fmt::format("pi_split_damping: {} locations", locations));
  if (dim_a < 1 || dim_s < 1) throw InternalError("pi_split_damping: empty factor");
  SplitDamping d;
  d.lambda_eff = lambda / double(locations);
  const double mean_a = trace_a / double(dim_a), mean_s = trace_s / double(dim_s);
  if (std::isfinite(mean_a) && std::isfinite(mean_s) && mean_a > 0 && mean_s > 0)
    d.pi = std::sqrt(mean_a / mean_s);
  const double root = std::sqrt(d.lambda_eff);
  d.a = d.pi * root;
  d.s = root / d.pi;
  return d;
}

template <class T>
double damping_floor(double trace, int n) {
  const double mean_diag = std::abs(trace) / double(n);
  return std::sqrt(double(std::numeric_limits<T>::epsilon())) *
         (mean_diag > double(std::numeric_limits<T>::min()) ? mean_diag : 1.0);
}
template double damping_floor<float>(double, int);
template double damping_floor<double>(double, int);

double raised_damping(double used, double floor) { return std::max(10.0 * used, floor); }

std::string kfac_state_name(const std::string& what, const std::string& layer) {
  return "optim.kfac." + what + "." + layer;
}

double damping_fraction(std::span<const double> a, std::span<const double> s, int locations, double lambda) {
  if (a.empty() || s.empty()) throw InternalError("damping_fraction: empty spectrum");
  std::int64_t above = 0;
  for (const double x : a)
    for (const double y : s) above += double(locations) * x * y > lambda;
  return double(above) / double(a.size() * s.size());
}

}  // namespace wdlab::optim

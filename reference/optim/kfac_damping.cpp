#include "reference/optim/kfac_damping.hpp"

#include <cmath>

#include <fmt/format.h>

#include "common/errors.hpp"

namespace wdlab::ref {

template <class T>
SplitDamping pi_split_damping(const Mat<T>& A, const Mat<T>& S, double lambda, int locations) {
  if (locations < 1) throw InternalError(fmt::format("pi_split_damping: {} locations", locations));
  if (A.rows() == 0 || S.rows() == 0) throw InternalError("pi_split_damping: empty factor");
  SplitDamping d;
  d.lambda_eff = lambda / double(locations);
  const double mean_a = double(A.trace()) / double(A.rows());
  const double mean_s = double(S.trace()) / double(S.rows());
  if (std::isfinite(mean_a) && std::isfinite(mean_s) && mean_a > 0 && mean_s > 0)
    d.pi = std::sqrt(mean_a / mean_s);
  const double root = std::sqrt(d.lambda_eff);
  d.a = d.pi * root;
  d.s = root / d.pi;
  return d;
}

template SplitDamping pi_split_damping<double>(const Mat<double>&, const Mat<double>&, double, int);
template SplitDamping pi_split_damping<float>(const Mat<float>&, const Mat<float>&, double, int);

}  // namespace wdlab::ref

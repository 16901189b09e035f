#include "common/data/synthetic.hpp"

#include <vector>

#include <fmt/format.h>

#include "common/errors.hpp"
#include "common/philox.hpp"

namespace wdlab::data {

Dataset make_gaussian(std::size_t n, int dim, int classes, std::uint64_t seed) {
  if (n < 1) throw UsageError("n", "0, expected ≥ 1 example");
  if (dim < 1) throw UsageError("dim", fmt::format("{}, expected ≥ 1", dim));
  if (classes < 2) throw UsageError("classes", fmt::format("{}, expected ≥ 2", classes));
  const std::size_t D = std::size_t(dim), K = std::size_t(classes);
  constexpr rng::Purpose P = rng::Purpose::synthetic;
  std::vector<double> teacher(K * D);
  for (std::size_t e = 0; e < K * D; ++e) teacher[e] = rng::normal(seed, P, 0, e);

  Dataset d;
  d.name = fmt::format("gaussian/n{}-d{}-k{}", n, dim, classes);
  d.source = fmt::format("make_gaussian(seed={})", seed);
  d.channels = dim;
  d.height = 1;
  d.width = 1;
  d.num_classes = classes;
  d.images.resize(n * D);
  d.labels.resize(n);
  std::vector<double> x(D);
  for (std::size_t i = 0; i < n; ++i) {
    for (std::size_t j = 0; j < D; ++j) {
      // Stored as float; the teacher sees the stored value so labels match the data exactly.
      d.images[i * D + j] = float(rng::normal(seed, P, 1, i * D + j));
      x[j] = d.images[i * D + j];
    }
    std::size_t best = 0;
    double best_score = 0;
    for (std::size_t k = 0; k < K; ++k) {
      double s = 0;
      for (std::size_t j = 0; j < D; ++j) s += teacher[k * D + j] * x[j];
      if (k == 0 || s > best_score) best = k, best_score = s;
    }
    d.labels[i] = std::int32_t(best);
  }
  d.validate();
  return d;
}

}  // namespace wdlab::data

#include "cuda/state_layout.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "common/errors.hpp"

namespace wdlab::cuda {

std::pair<std::int64_t, std::int64_t> compute_matrix_shape(const ParamInfo& p) {
  if (p.shape.size() == 1) return {p.shape[0], 1};
  std::int64_t cols = 1;
  for (std::size_t i = 1; i < p.shape.size(); ++i) cols *= p.shape[i];
  return {p.shape.empty() ? 1 : p.shape[0], cols};
}

io::Tensor optimizer_state_tensor(const ParamInfo& p, std::span<const float> values) {
  if (std::int64_t(values.size()) != p.numel())
    throw InternalError(fmt::format("{}: {} values for {} elements", p.name, values.size(), p.numel()));
  return io::Tensor::from_f32(p.shape, values);
}

std::vector<float> optimizer_state_values(const ParamInfo& p, const io::Tensor& t,
                                          const std::string& name) {
  if (t.shape != p.shape)
    throw DataError(name, fmt::format("optimizer state has the wrong shape (expected {}'s, [{}])", p.name,
                                      fmt::join(p.shape, ", ")));
  return t.to_f32(name);
}

io::Tensor scalar_state_tensor(float value) {
  const float v[1] = {value};
  return io::Tensor::from_f32({}, v);
}

}  // namespace wdlab::cuda

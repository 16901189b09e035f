#include "cuda/state_layout.hpp"

#include <fmt/format.h>

#include "common/errors.hpp"

namespace wdlab::cuda {

std::pair<std::int64_t, std::int64_t> compute_matrix_shape(const ParamInfo& p) {
  if (p.shape.size() == 1) return {p.shape[0], 1};
  std::int64_t cols = 1;
  for (std::size_t i = 1; i < p.shape.size(); ++i) cols *= p.shape[i];
  return {p.shape.empty() ? 1 : p.shape[0], cols};
}

io::Tensor optimizer_state_tensor(const ParamInfo& p, std::span<const float> values) {
  const auto [rows, cols] = compute_matrix_shape(p);
  if (std::int64_t(values.size()) != rows * cols)
    throw InternalError(fmt::format("{}: {} values for a {}x{} tensor", p.name, values.size(), rows, cols));
  std::vector<float> t(values.size());
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t c = 0; c < cols; ++c) t[std::size_t(c * rows + r)] = values[std::size_t(r * cols + c)];
  return io::Tensor::from_f32({cols, rows}, t);
}

std::vector<float> optimizer_state_values(const ParamInfo& p, const io::Tensor& t,
                                          const std::string& name) {
  const auto [rows, cols] = compute_matrix_shape(p);
  if (t.shape != std::vector<std::int64_t>{cols, rows})
    throw DataError(name, fmt::format("optimizer state has the wrong shape (expected [{}, {}])", cols, rows));
  const std::vector<float> d = t.to_f32(name);
  std::vector<float> v(d.size());
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t c = 0; c < cols; ++c) v[std::size_t(r * cols + c)] = d[std::size_t(c * rows + r)];
  return v;
}

io::Tensor scalar_state_tensor(float value) {
  const float v[1] = {value};
  return io::Tensor::from_f32({1, 1}, v);
}

}  // namespace wdlab::cuda

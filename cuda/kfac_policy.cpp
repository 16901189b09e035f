#include "cuda/kfac_policy.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "common/errors.hpp"

namespace wdlab::cuda {

std::vector<KfacBlockLayout> kfac_blocks(const NetworkSpec& spec) {
  const auto params = spec.params();
  std::vector<KfacBlockLayout> out;
  for (int l = 0; l < int(spec.layers.size()); ++l) {
    const Layer& layer = spec.layers[std::size_t(l)];
    if (!layer.has_weights()) continue;
    KfacBlockLayout b;
    b.layer = l;
    b.name = layer.name;
    for (int i = 0; i < int(params.size()); ++i) {
      if (params[std::size_t(i)].layer != l) continue;
      if (params[std::size_t(i)].role == ParamRole::weight) b.w = i;
      if (params[std::size_t(i)].role == ParamRole::bias) b.b = i;
    }
    if (b.w < 0) throw InternalError("kfac: layer " + layer.name + " has no weight tensor");
    const ParamInfo& w = params[std::size_t(b.w)];
    std::int64_t in = 1;
    for (std::size_t d = 1; d < w.shape.size(); ++d) in *= w.shape[d];
    b.out = int(w.shape[0]);
    b.in = int(in);
    b.locations = layer.kind == LayerKind::conv2d ? layer.out.H * layer.out.W : 1;
    out.push_back(std::move(b));
  }
  return out;
}

bool cholesky_pivots_ok(float min_pivot, float max_pivot) {
  return min_pivot > std::numeric_limits<float>::epsilon() * max_pivot;
}

std::optional<std::vector<float>> clipped_inverse_eigenvalues(std::span<const float> mu, float d) {
  if (mu.empty()) throw InternalError("clipped_inverse_eigenvalues: no eigenvalues");
  std::vector<float> e(mu.size());
  for (std::size_t i = 0; i < mu.size(); ++i) e[i] = std::max(mu[i] + d, d);
  const float lo = *std::min_element(e.begin(), e.end()), hi = *std::max_element(e.begin(), e.end());
  if (!(lo > std::numeric_limits<float>::epsilon() * hi)) return std::nullopt;
  for (float& x : e) x = 1.0f / x;
  return e;
}

io::Tensor kfac_matrix_tensor(int n, std::span<const float> v) {
  if (std::int64_t(v.size()) != std::int64_t(n) * n)
    throw InternalError(fmt::format("kfac_matrix_tensor: {} values for {}x{}", v.size(), n, n));
  std::vector<float> row_major(v.size());  // element (i, j): v[j·n + i] on the device, [i·n + j] here
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) row_major[std::size_t(i) * n + j] = v[std::size_t(j) * n + i];
  return io::Tensor::from_f32({n, n}, row_major);
}

std::vector<float> kfac_matrix_values(int n, const io::Tensor& t, const std::string& name) {
  if (t.shape != std::vector<std::int64_t>{n, n})
    throw DataError(name, fmt::format("K-FAC matrix has the wrong shape (expected [{}, {}])", n, n));
  const std::vector<float> row_major = t.to_f32(name);
  std::vector<float> v(row_major.size());
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) v[std::size_t(j) * n + i] = row_major[std::size_t(i) * n + j];
  return v;
}

io::Tensor damping_state_tensor(const SplitDamping& d) {
  const float v[4] = {float(d.lambda_eff), float(d.pi), float(d.a), float(d.s)};
  return io::Tensor::from_f32({4}, v);
}

SplitDamping damping_state_values(const io::Tensor& t, const std::string& name) {
  if (t.shape != std::vector<std::int64_t>{4})
    throw DataError(name, "K-FAC damping entry has the wrong shape (expected [4])");
  const auto v = t.to_f32(name);
  return SplitDamping{double(v[0]), double(v[1]), double(v[2]), double(v[3])};
}

bool flag_state_value(const io::Tensor& t, const std::string& name) {
  if (!t.shape.empty()) throw DataError(name, "must be a 0-d tensor");
  const float x = t.to_f32(name)[0];
  if (!(x == 0.0f || x == 1.0f)) throw DataError(name, fmt::format("must be 0 or 1, got {}", double(x)));
  return x == 1.0f;
}

}  // namespace wdlab::cuda

#pragma once
// Helpers shared by the optimizer tests: small specs, deterministic fills that do not use the
// code under test, random SPD factor statistics, flattening for compare().
#include <cmath>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "common/compare.hpp"
#include "common/model_zoo.hpp"
#include "common/network_spec.hpp"
#include "common/optim/optim_config.hpp"
#include "reference/net/network.hpp"
#include "reference/net/params.hpp"

namespace optim_test {

using namespace wdlab;
using namespace wdlab::ref;
using namespace wdlab::optim;

/// Bit for bit: both sides run the same floating-point operations in the same order (or one is
/// a restored copy of the other), so any difference at all is a bug.
inline constexpr double bitwise = 0.0;

/// A deterministic value in [−1, 1) (splitmix64), independent of the project's RNG.
inline double unit(std::uint64_t seed, std::uint64_t i) {
  std::uint64_t z = seed * 0x9E3779B97F4A7C15ull + i * 0xBF58476D1CE4E5B9ull + 0x94D049BB133111EBull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return double(z >> 11) * 0x1.0p-52 - 1.0;
}

/// fc0 (5×4 + 5), relu, fc1 (3×5 + 3).
inline NetworkSpec mlp_spec() { return zoo::mlp(Shape{4, 1, 1}, 3, {.depth = 1, .width = 5}); }

/// conv0 (3×2×3×3 + 3) → bn0 (γ, β) → relu → flatten → fc0 (4 + bias) → bn1 (γ, β) → relu → fc1.
inline NetworkSpec mixed_spec() {
  SpecBuilder b("mixed", Shape{2, 4, 4}, 3);
  b.affine = wdlab::Affine::on;
  b.conv("conv0", 3, 3, 1, 1, Bias::on);
  b.batchnorm("bn0");
  b.relu();
  b.flatten();
  b.dense("fc0", 4, Bias::on);
  b.batchnorm("bn1");
  b.relu();
  b.dense("fc1", 3, Bias::on);
  return b.finish();
}

/// conv0 (3×2×3×3 + 3, stride s, T = (4/s)² locations) → flatten → fc0 (3 + bias).
inline NetworkSpec conv_spec(int stride) {
  SpecBuilder b("conv", Shape{2, 4, 4}, 3);
  b.conv("conv0", 3, 3, stride, 1, Bias::on);
  b.flatten();
  b.dense("fc0", 3, Bias::on);
  return b.finish();
}

/// Every tensor (running statistics included, so that a write to them shows) filled with
/// scale·unit(seed, ·); running_var kept positive.
template <class T>
ParamStore<T> filled(const NetworkSpec& spec, std::uint64_t seed, double scale = 1.0) {
  ParamStore<T> p = ParamStore<T>::zeros(spec);
  std::uint64_t n = 0;
  for (std::size_t i = 0; i < p.values.size(); ++i)
    for (Eigen::Index j = 0; j < p.values[i].size(); ++j) {
      double x = scale * unit(seed, n++);
      if (p.info[i].role == ParamRole::running_var) x = 1.5 + x;
      p.values[i].data()[j] = T(x);
    }
  return p;
}

template <class T>
std::vector<double> flat(const ParamStore<T>& p) {
  std::vector<double> out;
  for (const auto& v : p.values)
    for (Eigen::Index j = 0; j < v.size(); ++j) out.push_back(double(v.data()[j]));
  return out;
}

template <class T>
std::vector<double> flat(const Mat<T>& m) {
  std::vector<double> out(std::size_t(m.size()));
  for (Eigen::Index j = 0; j < m.size(); ++j) out[j] = double(m.data()[j]);
  return out;
}


template <class T>
std::vector<double> flat_state(const std::vector<std::pair<std::string, Mat<T>>>& s) {
  std::vector<double> out;
  for (const auto& [name, m] : s)
    for (Eigen::Index j = 0; j < m.size(); ++j) out.push_back(double(m.data()[j]));
  return out;
}

inline Comparison cmp(const std::string& name, const std::vector<double>& x,
                      const std::vector<double>& ref, double tol) {
  return compare(name, std::span<const double>(x), std::span<const double>(ref), tol);
}
inline Comparison cmp(const std::string& name, const std::vector<double>& x,
                      const std::vector<double>& ref, tol::Kind kind) {
  return compare(name, std::span<const double>(x), std::span<const double>(ref), kind);
}

/// Dimensions of one K-FAC block, computed from the spec by hand.
struct BlockDims {
  int layer, a, out, locations;
};
inline std::vector<BlockDims> block_dims(const NetworkSpec& spec) {
  std::vector<BlockDims> d;
  for (int l = 0; l < int(spec.layers.size()); ++l) {
    const Layer& L = spec.layers[l];
    const int bias = L.bias == Bias::on ? 1 : 0;
    if (L.kind == LayerKind::dense) d.push_back({l, L.in.size() + bias, L.out.C, 1});
    if (L.kind == LayerKind::conv2d)
      d.push_back({l, L.in.C * L.kernel * L.kernel + bias, L.out.C, L.out.H * L.out.W});
  }
  return d;
}

/// A random SPD n×n matrix M Mᵀ/m, M n×(n+2) (full rank with probability one).
template <class T>
Mat<T> random_spd(int n, std::uint64_t seed, double scale = 1.0) {
  const int m = n + 2;
  Mat<double> M(n, m);
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < m; ++j) M(i, j) = unit(seed, std::uint64_t(i * m + j));
  Mat<double> A(n, n);
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) {
      double s = 0;
      for (int k = 0; k < m; ++k) s += M(i, k) * M(j, k);
      A(i, j) = scale * s / m;
    }
  return A.cast<T>();
}

/// Random SPD statistics for every block of spec.
template <class T>
std::vector<FactorStats<T>> random_stats(const NetworkSpec& spec, std::uint64_t seed) {
  std::vector<FactorStats<T>> s;
  for (const auto& d : block_dims(spec))
    s.push_back(FactorStats<T>{d.layer, random_spd<T>(d.a, seed * 101 + 2 * d.layer),
                               random_spd<T>(d.out, seed * 101 + 2 * d.layer + 1, 0.3), d.locations});
  return s;
}

}  // namespace optim_test

#include "reference/net/params.hpp"

#include <cmath>

#include <fmt/format.h>

#include "common/errors.hpp"
#include "common/philox.hpp"

namespace wdlab::ref {

namespace {
/// Compute-layout shape: rows × cols of the Eigen matrix holding a tensor.
std::pair<Eigen::Index, Eigen::Index> compute_shape(const ParamInfo& p) {
  if (p.shape.size() == 1) return {p.shape[0], 1};
  std::int64_t cols = 1;
  for (std::size_t i = 1; i < p.shape.size(); ++i) cols *= p.shape[i];
  return {p.shape[0], cols};
}
}  // namespace

template <class T>
ParamStore<T> ParamStore<T>::zeros(const NetworkSpec& spec) {
  ParamStore<T> s;
  s.info = spec.params();
  s.slots = layer_slots(spec);
  for (int i = 0; i < int(s.info.size()); ++i) {
    const auto [r, c] = compute_shape(s.info[i]);
    s.values.push_back(Mat<T>::Zero(r, c));
  }
  return s;
}

template <class T>
int ParamStore<T>::find(const std::string& name) const {
  for (int i = 0; i < int(info.size()); ++i)
    if (info[i].name == name) return i;
  return -1;
}

template <class T>
Mat<T>& ParamStore<T>::at(const std::string& name) {
  const int i = find(name);
  if (i < 0) throw InternalError("no parameter named " + name);
  return values[i];
}

template <class T>
const Mat<T>& ParamStore<T>::at(const std::string& name) const {
  return const_cast<ParamStore<T>*>(this)->at(name);
}

template <class T>
std::int64_t ParamStore<T>::numel() const {
  std::int64_t n = 0;
  for (const auto& v : values) n += v.size();
  return n;
}

template <class T>
ParamStore<T> ParamStore<T>::zeros_like() const {
  ParamStore<T> z = *this;
  for (auto& v : z.values) v.setZero();
  return z;
}

template <class T>
template <class U>
ParamStore<U> ParamStore<T>::cast() const {
  ParamStore<U> o;
  o.info = info;
  o.slots = slots;
  for (const auto& v : values) o.values.push_back(v.template cast<U>());
  return o;
}

template <class T>
ParamStore<T> init_params(const NetworkSpec& spec, std::uint64_t seed, Init init) {
  ParamStore<T> s = ParamStore<T>::zeros(spec);
  for (int i = 0; i < int(s.info.size()); ++i) {
    const ParamInfo& p = s.info[i];
    Mat<T>& v = s.values[i];
    switch (p.role) {
      case ParamRole::weight: {
        const double receptive = p.shape.size() == 4 ? double(p.shape[2] * p.shape[3]) : 1.0;
        const double fan_out = double(p.shape[0]) * receptive;
        const double fan_in = double(p.shape[1]) * receptive;
        const Eigen::Index cols = v.cols();
        for (Eigen::Index r = 0; r < v.rows(); ++r)
          for (Eigen::Index c = 0; c < cols; ++c) {
            const std::uint64_t idx = std::uint64_t(r) * cols + c;  // PyTorch row-major order
            const double w =
                init == Init::glorot_uniform
                    ? (2 * rng::uniform(seed, rng::Purpose::init, i, idx) - 1) *
                          std::sqrt(6.0 / (fan_in + fan_out))
                    : rng::normal(seed, rng::Purpose::init, i, idx) * std::sqrt(2.0 / fan_in);
            v(r, c) = T(w);
          }
        break;
      }
      case ParamRole::bn_weight:
      case ParamRole::running_var: v.setOnes(); break;
      default: v.setZero(); break;
    }
  }
  return s;
}

template <class T>
std::vector<T> to_pytorch_order(const ParamInfo& info, const Mat<T>& value) {
  (void)info;
  std::vector<T> out(value.size());
  // Row-major flattening of the compute matrix is PyTorch's order for every tensor we store.
  Eigen::Map<Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>(
      out.data(), value.rows(), value.cols()) = value;
  return out;
}

template <class T>
Mat<T> from_pytorch_order(const ParamInfo& info, const std::vector<T>& data) {
  const auto [r, c] = compute_shape(info);
  if (Eigen::Index(data.size()) != r * c)
    throw DataError(info.name, fmt::format("has {} values, expected {}", data.size(), r * c));
  return Eigen::Map<const Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>(
      data.data(), r, c);
}

template struct ParamStore<double>;
template struct ParamStore<float>;
template ParamStore<float> ParamStore<double>::cast<float>() const;
template ParamStore<double> ParamStore<float>::cast<double>() const;
template ParamStore<double> init_params<double>(const NetworkSpec&, std::uint64_t, Init);
template ParamStore<float> init_params<float>(const NetworkSpec&, std::uint64_t, Init);
template std::vector<double> to_pytorch_order<double>(const ParamInfo&, const Mat<double>&);
template std::vector<float> to_pytorch_order<float>(const ParamInfo&, const Mat<float>&);
template Mat<double> from_pytorch_order<double>(const ParamInfo&, const std::vector<double>&);
template Mat<float> from_pytorch_order<float>(const ParamInfo&, const std::vector<float>&);

}  // namespace wdlab::ref

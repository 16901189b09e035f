// Reference MLP passes; the formulas are in reference/mlp/mlp.hpp.
#include "reference/mlp/mlp.hpp"

#include <cmath>
#include <limits>

#include "common/errors.hpp"
#include "common/philox.hpp"

namespace wdlab::ref {

template <class T>
Vec<T> MlpParams<T>::flatten() const {
  Eigen::Index n = 0;
  for (std::size_t l = 0; l < W.size(); ++l) n += W[l].size() + (b.empty() ? 0 : b[l].size());
  Vec<T> theta(n);
  Eigen::Index off = 0;
  for (std::size_t l = 0; l < W.size(); ++l) {
    theta.segment(off, W[l].size()) = W[l].reshaped();
    off += W[l].size();
    if (!b.empty()) {
      theta.segment(off, b[l].size()) = b[l];
      off += b[l].size();
    }
  }
  return theta;
}

template <class T>
MlpParams<T> MlpParams<T>::unflatten(const MlpSpec& spec, const Vec<T>& theta) {
  WDLAB_CHECK(theta.size() == spec.num_params(), "θ has the wrong length");
  MlpParams<T> p;
  Eigen::Index off = 0;
  for (int l = 0; l < spec.num_layers(); ++l) {
    const int o = spec.out_dim(l), i = spec.in_dim(l);
    p.W.push_back(theta.segment(off, Eigen::Index(o) * i).reshaped(o, i));
    off += Eigen::Index(o) * i;
    if (spec.bias == Bias::on) {
      p.b.push_back(theta.segment(off, o));
      off += o;
    }
  }
  return p;
}

template <class T>
MlpParams<T> MlpParams<T>::scaled_layer(int l, T c) const {
  MlpParams<T> q = *this;
  q.W[l] *= c;
  if (!q.b.empty()) q.b[l] *= c;
  return q;
}

template <class T>
MlpParams<T> zeros_like(const MlpSpec& spec) {
  MlpParams<T> p;
  for (int l = 0; l < spec.num_layers(); ++l) {
    p.W.push_back(Mat<T>::Zero(spec.out_dim(l), spec.in_dim(l)));
    if (spec.bias == Bias::on) p.b.push_back(Vec<T>::Zero(spec.out_dim(l)));
  }
  return p;
}

template <class T>
MlpParams<T> init_params(const MlpSpec& spec, std::uint64_t seed, Init init, double bias_scale) {
  spec.validate();
  MlpParams<T> p = zeros_like<T>(spec);
  for (int l = 0; l < spec.num_layers(); ++l) {
    const int o = spec.out_dim(l), i = spec.in_dim(l);
    // Element (r, c) has index r*in + c, PyTorch's [out, in] order, whatever the storage.
    for (int r = 0; r < o; ++r)
      for (int c = 0; c < i; ++c) {
        const std::uint64_t idx = std::uint64_t(r) * i + c;
        double w;
        if (init == Init::glorot_uniform) {
          const double limit = std::sqrt(6.0 / (i + o));  // Var = 2/(fan_in + fan_out)
          w = (2 * rng::uniform(seed, rng::Purpose::init, l, idx) - 1) * limit;
        } else {
          w = rng::normal(seed, rng::Purpose::init, l, idx) * std::sqrt(2.0 / i);
        }
        p.W[l](r, c) = T(w);
      }
    if (spec.bias == Bias::on)
      for (int r = 0; r < o; ++r)
        p.b[l](r) = T(bias_scale * (2 * rng::uniform(seed, rng::Purpose::init, 1000 + l, r) - 1));
  }
  return p;
}

namespace {

template <class T>
void check_shapes(const MlpSpec& spec, const MlpParams<T>& p, const Mat<T>& X) {
  WDLAB_CHECK(int(p.W.size()) == spec.num_layers(), "parameter count does not match spec");
  WDLAB_CHECK(X.rows() == spec.input_dim, "input rows must equal spec.input_dim");
  if (spec.norm == Norm::batchnorm && X.cols() < 2)
    throw PreconditionError("batch statistics need a batch of at least 2 examples");
}

/// Centering-and-scaling projector shared by BN's backward and forward-mode passes:
///   P(d) = (d − mean_n d − z ⊙ mean_n(z ⊙ d)) / σ   (per unit, over the batch)
template <class T>
Mat<T> bn_project(const Mat<T>& z, const Vec<T>& sigma, const Mat<T>& d) {
  const Vec<T> mean_d = d.rowwise().mean();
  const Vec<T> mean_zd = (z.array() * d.array()).rowwise().mean();
  Mat<T> out = d;
  out.colwise() -= mean_d;
  out -= (z.array().colwise() * mean_zd.array()).matrix();
  return (out.array().colwise() / sigma.array()).matrix();
}

template <class T>
Mat<T> relu_mask(const Mat<T>& z) {
  return (z.array() > T(0)).template cast<T>().matrix();
}

}  // namespace

template <class T>
MlpForward<T> forward(const MlpSpec& spec, const MlpParams<T>& p, const Mat<T>& X) {
  check_shapes(spec, p, X);
  MlpForward<T> fw;
  fw.a.push_back(X);
  for (int l = 0; l < spec.num_layers(); ++l) {
    Mat<T> s = p.W[l] * fw.a.back();
    if (spec.bias == Bias::on) s.colwise() += p.b[l];
    Mat<T> z = s;
    Vec<T> sigma;
    if (spec.has_bn(l)) {
      // μ = mean_n s, σ² = mean_n (s − μ)² + ε (biased batch variance, as in training mode)
      z.colwise() -= s.rowwise().mean();
      sigma = (z.array().square().rowwise().mean() + T(spec.bn_eps)).sqrt();
      z = (z.array().colwise() / sigma.array()).matrix();
    }
    fw.s.push_back(std::move(s));
    fw.sigma.push_back(std::move(sigma));
    if (l < spec.depth) {
      fw.a.push_back(spec.activation == Activation::relu ? Mat<T>(z.cwiseMax(T(0))) : z);
    }
    fw.z.push_back(std::move(z));
  }
  return fw;
}

template <class T>
MlpGrads<T> backward(const MlpSpec& spec, const MlpParams<T>& p, const MlpForward<T>& fw,
                     const Mat<T>& dF) {
  const int n_layers = spec.num_layers();
  WDLAB_CHECK(dF.rows() == spec.output_dim && dF.cols() == fw.a[0].cols(), "dF shape");
  MlpGrads<T> g;
  g.dW.resize(n_layers);
  g.ds.resize(n_layers);
  if (spec.bias == Bias::on) g.db.resize(n_layers);
  Mat<T> ds = dF;  // cotangent at s_{L+1} = f
  for (int l = n_layers - 1; l >= 0; --l) {
    g.dW[l] = ds * fw.a[l].transpose();  // dW_l = ds_l a_{l-1}ᵀ
    if (spec.bias == Bias::on) g.db[l] = ds.rowwise().sum();
    Mat<T> da = p.W[l].transpose() * ds;  // cotangent at the layer's input a_{l-1}
    g.ds[l] = std::move(ds);
    if (l == 0) {
      g.dX = std::move(da);
      break;
    }
    const int h = l - 1;  // the hidden layer that produced a[l]
    Mat<T> dz = spec.activation == Activation::relu
                    ? Mat<T>(da.cwiseProduct(relu_mask(fw.z[h])))
                    : da;
    ds = spec.has_bn(h) ? bn_project(fw.z[h], fw.sigma[h], dz) : dz;
  }
  return g;
}

template <class T>
Vec<T> MlpGrads<T>::flatten() const {
  MlpParams<T> p{dW, db};
  return p.flatten();
}

template <class T>
Mat<T> jvp(const MlpSpec& spec, const MlpParams<T>& p, const MlpForward<T>& fw,
           const MlpParams<T>& dtheta, const Mat<T>& dX) {
  Mat<T> da = dX;  // tangent of the current layer's input
  for (int l = 0; l < spec.num_layers(); ++l) {
    // ds_l = dW_l a_{l-1} + W_l da_{l-1} + db_l
    Mat<T> ds = dtheta.W[l] * fw.a[l] + p.W[l] * da;
    if (spec.bias == Bias::on) ds.colwise() += dtheta.b[l];
    if (l == spec.depth) return ds;
    Mat<T> dz = spec.has_bn(l) ? bn_project(fw.z[l], fw.sigma[l], ds) : ds;
    da = spec.activation == Activation::relu ? Mat<T>(dz.cwiseProduct(relu_mask(fw.z[l]))) : dz;
  }
  throw InternalError("jvp: unreachable");
}

template <class T>
T min_abs_preactivation(const MlpSpec& spec, const MlpForward<T>& fw) {
  T m = std::numeric_limits<T>::infinity();
  if (spec.activation == Activation::linear) return m;
  for (int l = 0; l < spec.depth; ++l) m = std::min(m, fw.z[l].cwiseAbs().minCoeff());
  return m;
}

#define WDLAB_INSTANTIATE(T)                                                                  \
  template struct MlpParams<T>;                                                               \
  template struct MlpGrads<T>;                                                                \
  template MlpParams<T> zeros_like<T>(const MlpSpec&);                                        \
  template MlpParams<T> init_params<T>(const MlpSpec&, std::uint64_t, Init, double);          \
  template MlpForward<T> forward<T>(const MlpSpec&, const MlpParams<T>&, const Mat<T>&);      \
  template MlpGrads<T> backward<T>(const MlpSpec&, const MlpParams<T>&, const MlpForward<T>&, \
                                   const Mat<T>&);                                            \
  template Mat<T> jvp<T>(const MlpSpec&, const MlpParams<T>&, const MlpForward<T>&,           \
                         const MlpParams<T>&, const Mat<T>&);                                 \
  template T min_abs_preactivation<T>(const MlpSpec&, const MlpForward<T>&);
WDLAB_INSTANTIATE(double)
WDLAB_INSTANTIATE(float)
#undef WDLAB_INSTANTIATE

}  // namespace wdlab::ref

// The direct side: plain nested loops over NCHW arrays, no GEMM, no im2col, double only. It is
// the independent path of `--exact`: with integer inputs, weights and cotangents every sum is an
// exact integer, so it must match the reference engine bit for bit (STYLE.md #9). Convolutions
// use reference/ops/conv2d_direct; dense, pooling and the K-FAC factors are written out here.
// The one non-integer step, scaling a factor by 1/(N·T), is done as the reference does it
// (the rounded double 1/(N·T) times the exact sum, once), so it rounds identically.
#include <algorithm>

#include <fmt/format.h>

#include "apps/crosscheck/side.hpp"
#include "apps/crosscheck/tensor_names.hpp"
#include "reference/ops/conv2d.hpp"
#include "reference/ops/conv2d_direct.hpp"

namespace wdlab::xcheck {

namespace {

using ref::Mat;
using ref::Vec;

Tensor nchw(std::string name, Quantity q, std::vector<double> v, int N, Shape s) {
  return Tensor{std::move(name), q, {N, s.C, s.H, s.W}, std::move(v), ""};
}

Tensor square(std::string name, std::vector<double> v, std::int64_t n) {
  return Tensor{std::move(name), Quantity::kfac_factor, {n, n}, std::move(v), ""};
}

const Tensor& find(const Tensors& t, const std::string& name) {
  for (const auto& x : t)
    if (x.name == name) return x;
  throw InternalError("direct side: no parameter " + name);
}

class DirectSide final : public Side {
 public:
  std::string name() const override { return "direct"; }
  Precision precision() const override { return Precision::float64; }
  std::string unsupported(const Case& c) const override {
    if (c.kind != CaseKind::layer || !exact_capable(c.layer))
      return "the direct-loop oracle computes single integer-arithmetic layers only (use it with --exact)";
    return "";
  }
  Tensors run(const Case& c, const CaseData& d) override {
    const Layer& l = c.spec.layers[0];
    const int N = c.batch;
    const std::vector<double>& x = d.batches[0].x;
    const std::vector<double>& dy = d.cotangent;
    const int in_size = l.in.size(), out_size = l.out.size();
    std::vector<double> y(std::size_t(out_size) * N, 0.0), dx(std::size_t(in_size) * N, 0.0);
    Tensors out;
    switch (l.kind) {
      case LayerKind::conv2d: conv(c, d, out, y, dx); break;
      case LayerKind::dense: dense(c, d, out, y, dx); break;
      case LayerKind::relu:
        for (std::size_t i = 0; i < y.size(); ++i) {
          y[i] = x[i] > 0 ? x[i] : 0.0;
          dx[i] = x[i] > 0 ? dy[i] : 0.0;
        }
        break;
      case LayerKind::maxpool: {
        const int C = l.in.C, H = l.in.H, W = l.in.W, P = l.out.H, Q = l.out.W, win = l.kernel, st = l.stride;
        for (int n = 0; n < N; ++n)
          for (int ch = 0; ch < C; ++ch)
            for (int p = 0; p < P; ++p)
              for (int q = 0; q < Q; ++q) {
                std::size_t best = 0;
                bool first = true;
                for (int r = 0; r < win; ++r)
                  for (int s = 0; s < win; ++s) {
                    const std::size_t at = std::size_t(n) * in_size + (std::size_t(ch) * H + p * st + r) * W + q * st + s;
                    if (first || x[at] > x[best]) best = at;  // the first maximum wins
                    first = false;
                  }
                const std::size_t o = std::size_t(n) * out_size + (std::size_t(ch) * P + p) * Q + q;
                y[o] = x[best];
                dx[best] += dy[o];
              }
        break;
      }
      case LayerKind::global_avgpool: {
        const int C = l.in.C, HW = l.in.H * l.in.W;
        for (int n = 0; n < N; ++n)
          for (int ch = 0; ch < C; ++ch) {
            double sum = 0;
            for (int i = 0; i < HW; ++i) sum += x[std::size_t(n) * in_size + std::size_t(ch) * HW + i];
            y[std::size_t(n) * C + ch] = sum / double(HW);
            for (int i = 0; i < HW; ++i)
              dx[std::size_t(n) * in_size + std::size_t(ch) * HW + i] = dy[std::size_t(n) * C + ch] / double(HW);
          }
        break;
      }
      case LayerKind::flatten:
        y = x;
        dx = dy;
        break;
      case LayerKind::residual_add:  // x + x: both branches are the input
        for (std::size_t i = 0; i < y.size(); ++i) {
          y[i] = x[i] + x[i];
          dx[i] = dy[i] + dy[i];
        }
        break;
      // Kinds of real arithmetic (layer_info(k).arithmetic): unsupported() refuses them above.
      case LayerKind::batchnorm:
      case LayerKind::tanh: throw InternalError("direct side: " + to_string(l.kind) + " is not exact");
    }
    out.insert(out.begin(), nchw(names::layer_output(), output_quantity(l.kind), y, N, l.out));
    out.insert(out.begin() + 1, nchw(names::input_grad(), Quantity::activation_grad, dx, N, l.in));
    return out;
  }

 private:
  static void conv(const Case& c, const CaseData& d, Tensors& out, std::vector<double>& y, std::vector<double>& dx) {
    const Layer& l = c.spec.layers[0];
    const auto g = l.conv_geometry(c.batch);
    const Tensor& wt = find(d.params, l.name + ".weight");
    const Mat<double> w = Eigen::Map<const Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>(
        wt.data.data(), g.K, g.C * g.R * g.S);
    const Mat<double> x = Eigen::Map<const Mat<double>>(d.batches[0].x.data(), l.in.size(), g.N);
    const Mat<double> dy = Eigen::Map<const Mat<double>>(d.cotangent.data(), l.out.size(), g.N);
    Vec<double> b, db(g.K);
    const bool bias = l.bias == Bias::on;
    if (bias) b = Eigen::Map<const Vec<double>>(find(d.params, l.name + ".bias").data.data(), g.K);
    Mat<double> ym, dxm, dw;
    ref::conv2d_fprop_direct(g, x, w, bias ? &b : nullptr, ym);
    ref::conv2d_bprop_data_direct(g, dy, w, dxm);
    ref::conv2d_bprop_filter_direct(g, x, dy, dw, bias ? &db : nullptr);
    y.assign(ym.data(), ym.data() + ym.size());
    dx.assign(dxm.data(), dxm.data() + dxm.size());
    std::vector<double> dwv(dw.size());
    for (int k = 0; k < g.K; ++k)
      for (int j = 0; j < dw.cols(); ++j) dwv[std::size_t(k) * dw.cols() + j] = dw(k, j);
    out.push_back(Tensor{names::grad(l.name + ".weight"), Quantity::param_grad, wt.shape, dwv, ""});
    if (bias) out.push_back(Tensor{names::grad(l.name + ".bias"), Quantity::param_grad, {g.K}, {db.data(), db.data() + g.K}, ""});
    // KFC factors: Ω = Σ_{n,p,q} ā ā ᵀ/(N·T), Γ = Σ_{n,p,q} ds dsᵀ/(N·T), ā the zero-padded patch.
    const int P = g.P(), Q = g.Q(), CRS = g.C * g.R * g.S, a_dim = CRS + (bias ? 1 : 0);
    const double scale = 1.0 / (double(g.N) * double(P * Q));
    // The reference scales the exact sums once (reference/ops/conv2d.cpp, grouped_gram): so here.
    std::vector<double> A(std::size_t(a_dim) * a_dim, 0.0), S(std::size_t(g.K) * g.K, 0.0), patch(a_dim);
    for (int n = 0; n < g.N; ++n) {
      for (int p = 0; p < P; ++p)
        for (int q = 0; q < Q; ++q) {
          for (int ch = 0; ch < g.C; ++ch)
            for (int r = 0; r < g.R; ++r)
              for (int s = 0; s < g.S; ++s) {
                const int h = p * g.stride - g.pad + r, v = q * g.stride - g.pad + s;
                const bool inside = h >= 0 && h < g.H && v >= 0 && v < g.W;
                patch[(ch * g.R + r) * g.S + s] = inside ? x((std::size_t(ch) * g.H + h) * g.W + v, n) : 0.0;
              }
          if (bias) patch[CRS] = 1.0;
          for (int i = 0; i < a_dim; ++i)
            for (int j = 0; j < a_dim; ++j) A[std::size_t(i) * a_dim + j] += patch[i] * patch[j];
          for (int i = 0; i < g.K; ++i)
            for (int j = 0; j < g.K; ++j)
              S[std::size_t(i) * g.K + j] += dy((std::size_t(i) * P + p) * Q + q, n) * dy((std::size_t(j) * P + p) * Q + q, n);
        }
    }
    for (double& v : A) v *= scale;
    for (double& v : S) v *= scale;
    out.push_back(square(names::layer_factor('A'), std::move(A), a_dim));
    out.push_back(square(names::layer_factor('S'), std::move(S), g.K));
  }

  static void dense(const Case& c, const CaseData& d, Tensors& out, std::vector<double>& y, std::vector<double>& dx) {
    const Layer& l = c.spec.layers[0];
    const int N = c.batch, in = l.in.size(), o = l.out.C;
    const bool bias = l.bias == Bias::on;
    const Tensor& w = find(d.params, l.name + ".weight");
    const std::vector<double>& x = d.batches[0].x;
    const std::vector<double>& dy = d.cotangent;
    std::vector<double> dw(std::size_t(o) * in, 0.0), db(o, 0.0);
    const std::vector<double>* b = bias ? &find(d.params, l.name + ".bias").data : nullptr;
    for (int n = 0; n < N; ++n)
      for (int k = 0; k < o; ++k) {
        double s = 0;
        for (int i = 0; i < in; ++i) s += w.data[std::size_t(k) * in + i] * x[std::size_t(n) * in + i];
        y[std::size_t(n) * o + k] = s + (b ? (*b)[k] : 0.0);
      }
    for (int n = 0; n < N; ++n)
      for (int i = 0; i < in; ++i) {
        double s = 0;
        for (int k = 0; k < o; ++k) s += w.data[std::size_t(k) * in + i] * dy[std::size_t(n) * o + k];
        dx[std::size_t(n) * in + i] = s;
      }
    for (int k = 0; k < o; ++k)
      for (int n = 0; n < N; ++n) {
        for (int i = 0; i < in; ++i) dw[std::size_t(k) * in + i] += dy[std::size_t(n) * o + k] * x[std::size_t(n) * in + i];
        db[k] += dy[std::size_t(n) * o + k];
      }
    out.push_back(Tensor{names::grad(l.name + ".weight"), Quantity::param_grad, w.shape, dw, ""});
    if (bias) out.push_back(Tensor{names::grad(l.name + ".bias"), Quantity::param_grad, {o}, db, ""});
    // A = E[ā āᵀ] with ā = [x; 1], S = E[dy dyᵀ] over the batch (divided by N, as the reference).
    const int a_dim = in + (bias ? 1 : 0);
    std::vector<double> A(std::size_t(a_dim) * a_dim, 0.0), S(std::size_t(o) * o, 0.0);
    auto abar = [&](int n, int i) { return i < in ? x[std::size_t(n) * in + i] : 1.0; };
    for (int i = 0; i < a_dim; ++i)
      for (int j = 0; j < a_dim; ++j) {
        double s = 0;
        for (int n = 0; n < N; ++n) s += abar(n, i) * abar(n, j);
        A[std::size_t(i) * a_dim + j] = s / double(N);
      }
    for (int i = 0; i < o; ++i)
      for (int j = 0; j < o; ++j) {
        double s = 0;
        for (int n = 0; n < N; ++n) s += dy[std::size_t(n) * o + i] * dy[std::size_t(n) * o + j];
        S[std::size_t(i) * o + j] = s / double(N);
      }
    out.push_back(square(names::layer_factor('A'), std::move(A), a_dim));
    out.push_back(square(names::layer_factor('S'), std::move(S), o));
  }
};

}  // namespace

std::unique_ptr<Side> make_direct_side() { return std::make_unique<DirectSide>(); }

}  // namespace wdlab::xcheck

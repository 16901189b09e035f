// Reference conv passes by batched im2col + GEMM; formulas and layouts in reference/ops/conv2d.hpp.
// Per chunk of nb examples the work is laid out "stacked": row nl·T + t (T = P·Q) holds output
// location t of example n0 + nl, so that
//   patches  Aᵗ : nb·T × C·R·S   (column-major: one column per filter tap (c,r,s), caffe's im2col)
//   outputs  Yᵗ : nb·T × K       (Yᵗ = Aᵗ wᵀ; column k, example nl is one contiguous run of T,
//                                 as is y[k·T .. k·T+T, n], so reordering is a block copy)
#include "reference/ops/conv2d.hpp"

#include <algorithm>
#include <vector>

#include "common/cpu_runtime.hpp"

#include "reference/ops/conv2d_shapes.hpp"
#include "reference/ops/thread_scratch.hpp"

namespace wdlab::ref {

namespace {

// Patch buffer per chunk. Small on purpose: measured on the 2-core box (float, N=128, C=K=32,
// 28×28, 3×3), 1–8 MB chunks ran the three passes 4–8× faster than 64 MB ones, which are
// mmap'ed afresh by malloc on every call (page faults) and leave cache between im2col and GEMM.
constexpr std::size_t kPatchBudgetBytes = std::size_t(4) << 20;

/// Output positions o ∈ [lo, hi) whose input coordinate o·σ − pad + tap lies in [0, in).
struct Range {
  int lo, hi;
};
Range valid_outputs(int out, int in, int pad, int stride, int tap) {
  const int need = pad - tap;          // o·σ ≥ need
  const int top = in - 1 + pad - tap;  // o·σ ≤ top
  const int lo = std::min(out, need <= 0 ? 0 : (need + stride - 1) / stride);
  const int hi = std::min(out, top < 0 ? 0 : top / stride + 1);
  return {lo, std::max(lo, hi)};
}

/// Stride 1 and an output as wide as the input (S = 2·pad + 1, the 3×3 pad-1 convolutions): output
/// (p, q) of tap (r, s) reads input row p − pad + r, column q − pad + s, so rows of the output and
/// of the input have the same length and a tap's valid outputs map to one contiguous run of x.
bool same_width_stride1(const Conv2dGeometry& g) { return g.stride == 1 && g.Q() == g.W; }

/// Aᵗ[nl·T + p·Q + q, (c·R + r)·S + s] = x[n0+nl, c, p·σ−pad+r, q·σ−pad+s] for nl < nb
/// (0 outside the image). Writes the first C·R·S columns of At (At.rows() ≥ nb·T).
template <class T>
void im2col(const Conv2dGeometry& g, const Mat<T>& x, int n0, int nb, Eigen::Ref<Mat<T>> At) {
  const int P = g.P(), Q = g.Q(), st = g.stride;
  const long HW = long(g.H) * g.W, PQ = long(P) * Q;
  for (int c = 0; c < g.C; ++c)
    for (int r = 0; r < g.R; ++r) {
      const Range pr = valid_outputs(P, g.H, g.pad, st, r);
      for (int s = 0; s < g.S; ++s) {
        const Range qr = valid_outputs(Q, g.W, g.pad, st, s);
        T* col = At.col((long(c) * g.R + r) * g.S + s).data();
        for (int nl = 0; nl < nb; ++nl) {
          const T* xc = x.col(n0 + nl).data() + c * HW;
          T* dst = col + nl * PQ;
          std::fill(dst, dst + long(pr.lo) * Q, T(0));
          std::fill(dst + long(pr.hi) * Q, dst + PQ, T(0));
          if (pr.lo >= pr.hi) continue;
          if (same_width_stride1(g)) {
            // Output (p, q) reads x at p·W + q + shift: the tap's valid rows are one run of x.
            // One copy of the run from its first to its last valid entry; the columns outside
            // [qr.lo, qr.hi), which picked up the ends of neighbouring rows, are then set to 0.
            const long shift = long(r - g.pad) * g.W + (s - g.pad);
            if (qr.lo < qr.hi) {
              const long first = long(pr.lo) * Q + qr.lo, last = long(pr.hi - 1) * Q + qr.hi;
              std::copy(xc + first + shift, xc + last + shift, dst + first);
            }
            for (int p = pr.lo; p < pr.hi; ++p) {
              T* d = dst + long(p) * Q;
              for (int q = 0; q < qr.lo; ++q) d[q] = T(0);
              for (int q = std::max(qr.lo, qr.hi); q < Q; ++q) d[q] = T(0);
            }
            continue;
          }
          for (int p = pr.lo; p < pr.hi; ++p) {
            T* d = dst + long(p) * Q;
            const long base = long(p * st - g.pad + r) * g.W + (s - g.pad);  // x index at q = 0
            std::fill(d, d + qr.lo, T(0));
            std::fill(d + qr.hi, d + Q, T(0));
            if (st == 1) {
              std::copy(xc + base + qr.lo, xc + base + qr.hi, d + qr.lo);
            } else {
              for (int q = qr.lo; q < qr.hi; ++q) d[q] = xc[base + long(q) * st];
            }
          }
        }
      }
    }
}

/// dx[n0+nl, c, p·σ−pad+r, q·σ−pad+s] += Dᵗ[nl·T + p·Q + q, (c·R + r)·S + s] (inside the image):
/// the adjoint of im2col. Dt is the caller's scratch: on the same-width stride-1 path its entries
/// that fall outside the image are set to 0 first (they add nothing either way).
template <class T>
void col2im_add(const Conv2dGeometry& g, Eigen::Ref<Mat<T>> Dt, int n0, int nb, Mat<T>& dx) {
  const int P = g.P(), Q = g.Q(), st = g.stride;
  const long HW = long(g.H) * g.W, PQ = long(P) * Q;
  for (int c = 0; c < g.C; ++c)
    for (int r = 0; r < g.R; ++r) {
      const Range pr = valid_outputs(P, g.H, g.pad, st, r);
      for (int s = 0; s < g.S; ++s) {
        const Range qr = valid_outputs(Q, g.W, g.pad, st, s);
        T* col = Dt.col((long(c) * g.R + r) * g.S + s).data();
        for (int nl = 0; nl < nb; ++nl) {
          T* dxc = dx.col(n0 + nl).data() + c * HW;
          T* src = col + nl * PQ;
          if (pr.lo >= pr.hi || qr.lo >= qr.hi) continue;
          if (same_width_stride1(g)) {
            // As in im2col: one run from the first to the last valid entry, with the entries of
            // the columns outside [qr.lo, qr.hi) zeroed so that they add 0 to the neighbouring rows.
            const long shift = long(r - g.pad) * g.W + (s - g.pad);
            const long first = long(pr.lo) * Q + qr.lo, last = long(pr.hi - 1) * Q + qr.hi;
            for (int p = pr.lo; p < pr.hi; ++p) {
              T* d = src + long(p) * Q;
              for (int q = 0; q < qr.lo; ++q) d[q] = T(0);
              for (int q = qr.hi; q < Q; ++q) d[q] = T(0);
            }
            T* out = dxc + shift;
            for (long i = first; i < last; ++i) out[i] += src[i];
            continue;
          }
          for (int p = pr.lo; p < pr.hi; ++p) {
            const T* d = src + long(p) * Q;
            const long base = long(p * st - g.pad + r) * g.W + (s - g.pad);
            if (st == 1) {
              for (int q = qr.lo; q < qr.hi; ++q) dxc[base + q] += d[q];
            } else {
              for (int q = qr.lo; q < qr.hi; ++q) dxc[base + long(q) * st] += d[q];
            }
          }
        }
      }
    }
}

/// y[k·T + t, n0+nl] = Yᵗ[nl·T + t, k] (+ b[k]).
template <class T>
void stacked_to_output(const Conv2dGeometry& g, const Eigen::Ref<const Mat<T>>& Yt, int n0, int nb,
                       const Vec<T>* b, Mat<T>& y) {
  const long PQ = long(g.P()) * g.Q();
  for (int nl = 0; nl < nb; ++nl)
    for (int k = 0; k < g.K; ++k) {
      auto dst = y.col(n0 + nl).segment(k * PQ, PQ);
      const auto src = Yt.col(k).segment(nl * PQ, PQ);
      if (b)
        dst = src.array() + (*b)(k);
      else
        dst = src;
    }
}

/// Yᵗ[nl·T + t, k] = y[k·T + t, n0+nl].
template <class T>
void output_to_stacked(const Conv2dGeometry& g, const Mat<T>& y, int n0, int nb, Eigen::Ref<Mat<T>> Yt) {
  const long PQ = long(g.P()) * g.Q();
  for (int nl = 0; nl < nb; ++nl)
    for (int k = 0; k < g.K; ++k)
      Yt.col(k).segment(nl * PQ, PQ) = y.col(n0 + nl).segment(k * PQ, PQ);
}

}  // namespace

int conv2d_chunk_examples(const Conv2dGeometry& g, std::size_t scalar_bytes) {
  g.validate();
  const std::size_t per_example = std::size_t(g.P()) * g.Q() * std::size_t(g.patch_size()) *
                                  std::max<std::size_t>(1, scalar_bytes);
  const std::size_t n = kPatchBudgetBytes / per_example;
  return int(std::clamp<std::size_t>(n, 1, std::size_t(g.N)));
}

namespace {

// The passes cut the batch into at least this many chunks (fewer examples per chunk than the
// 4 MB budget allows when N is small), so that parallel_for has work for every thread; the cut
// depends on the geometry only, never on the thread count, so the results do not either.
constexpr int kMinPassChunks = 8;

/// The chunks of examples one pass works through: chunk i holds examples [first(i), first(i) + size(i)).
struct PassChunks {
  PassChunks(const Conv2dGeometry& g, std::size_t scalar_bytes)
      : N(g.N),
        per(std::min(conv2d_chunk_examples(g, scalar_bytes), (g.N + kMinPassChunks - 1) / kMinPassChunks)),
        count((g.N + per - 1) / per),
        PQ(long(g.P()) * g.Q()) {}
  int first(int i) const { return i * per; }
  int size(int i) const { return std::min(per, N - i * per); }
  int N, per, count;
  long PQ;
};

/// One chunk's patches Aᵗ (per·P·Q × C·R·S) and stacked outputs Yᵗ (per·P·Q × K) on this thread.
template <class T>
Eigen::Map<Mat<T>> chunk_patches(const PassChunks& c, const Conv2dGeometry& g) {
  return thread_scratch<T, Scratch::conv_patches>(long(c.per) * c.PQ, g.patch_size());
}
template <class T>
Eigen::Map<Mat<T>> chunk_outputs(const PassChunks& c, const Conv2dGeometry& g) {
  return thread_scratch<T, Scratch::conv_outputs>(long(c.per) * c.PQ, g.K);
}

}  // namespace

template <class T>
void conv2d_fprop(const Conv2dGeometry& g, const Mat<T>& x, const Mat<T>& w,
                  const NoDeduce<Vec<T>>* b, Mat<T>& y) {
  g.validate();
  detail::check_input("conv2d_fprop", g, x);
  detail::check_filter("conv2d_fprop", g, w);
  detail::check_bias("conv2d_fprop", g, b);
  WDLAB_CHECK(&x != &y, "conv2d_fprop: y must not alias x");
  const PassChunks c(g, sizeof(T));
  y.resize(g.K * c.PQ, g.N);
  parallel_for(c.count, [&](int i, int) {
    const int n0 = c.first(i), nb = c.size(i);
    const long m = nb * c.PQ;
    auto At = chunk_patches<T>(c, g);
    auto Yt = chunk_outputs<T>(c, g);
    im2col<T>(g, x, n0, nb, At);
    Yt.topRows(m).noalias() = At.topRows(m) * w.transpose();
    stacked_to_output<T>(g, Yt, n0, nb, b, y);
  });
}

template <class T>
void conv2d_bprop_data(const Conv2dGeometry& g, const Mat<T>& dy, const Mat<T>& w, Mat<T>& dx) {
  g.validate();
  detail::check_output("conv2d_bprop_data", "dy (K·P·Q × N)", g, dy);
  detail::check_filter("conv2d_bprop_data", g, w);
  WDLAB_CHECK(&dx != &dy, "conv2d_bprop_data: dx must not alias dy");
  const PassChunks c(g, sizeof(T));
  dx.setZero(long(g.C) * g.H * g.W, g.N);
  parallel_for(c.count, [&](int i, int) {  // chunks write disjoint columns of dx
    const int n0 = c.first(i), nb = c.size(i);
    const long m = nb * c.PQ;
    auto Dt = chunk_patches<T>(c, g);
    auto DYt = chunk_outputs<T>(c, g);
    output_to_stacked<T>(g, dy, n0, nb, DYt);
    Dt.topRows(m).noalias() = DYt.topRows(m) * w;  // ∂/∂Aᵗ of ⟨Yᵗ, DYᵗ⟩
    col2im_add<T>(g, Dt, n0, nb, dx);
  });
}

template <class T>
void conv2d_bprop(const Conv2dGeometry& g, const Mat<T>& x, const Mat<T>& dy, const Mat<T>& w, Mat<T>& dw,
                  NoDeduce<Vec<T>>* db, Mat<T>* dx) {
  g.validate();
  detail::check_input("conv2d_bprop", g, x);
  detail::check_output("conv2d_bprop", "dy (K·P·Q × N)", g, dy);
  if (dx) {
    detail::check_filter("conv2d_bprop", g, w);
    WDLAB_CHECK(dx != &dy && dx != &x, "conv2d_bprop: dx must not alias x or dy");
    dx->setZero(long(g.C) * g.H * g.W, g.N);
  }
  const PassChunks c(g, sizeof(T));
  // dw = Σ_chunks DYᵗᵀ Aᵗ: one partial per chunk (column i of `parts`, viewed as K × C·R·S),
  // added in chunk order, so the sum does not depend on which thread computed which chunk.
  const long KCRS = long(g.K) * g.patch_size();
  auto parts = thread_scratch<T, Scratch::conv_partials>(KCRS, c.count);  // the calling thread's
  auto part = [&](int i) { return Eigen::Map<Mat<T>>(parts.col(i).data(), g.K, g.patch_size()); };
  parallel_for(c.count, [&](int i, int) {
    const int n0 = c.first(i), nb = c.size(i);
    const long m = nb * c.PQ;
    auto At = chunk_patches<T>(c, g);
    auto DYt = chunk_outputs<T>(c, g);
    im2col<T>(g, x, n0, nb, At);
    output_to_stacked<T>(g, dy, n0, nb, DYt);
    part(i).noalias() = DYt.topRows(m).transpose() * At.topRows(m);
    if (dx) {
      // The data pass of the same chunk while DYᵗ is in cache; Aᵗ's buffer takes Dᵗ = DYᵗ w.
      At.topRows(m).noalias() = DYt.topRows(m) * w;
      col2im_add<T>(g, At, n0, nb, *dx);
    }
  });
  dw = part(0);
  for (int i = 1; i < c.count; ++i) dw += part(i);
  if (db) {
    db->setZero(g.K);
    const long PQ = c.PQ;
    for (int n = 0; n < g.N; ++n)
      for (int k = 0; k < g.K; ++k) (*db)(k) += dy.col(n).segment(k * PQ, PQ).sum();
  }
}

template <class T>
void conv2d_bprop_filter(const Conv2dGeometry& g, const Mat<T>& x, const Mat<T>& dy, Mat<T>& dw,
                         NoDeduce<Vec<T>>* db) {
  conv2d_bprop(g, x, dy, Mat<T>(), dw, db, static_cast<Mat<T>*>(nullptr));
}

template <class T>
Mat<T> conv2d_patches(const Conv2dGeometry& g, const Mat<T>& x, Homogeneous h) {
  g.validate();
  detail::check_input("conv2d_patches", g, x);
  const long PQ = long(g.P()) * g.Q();
  const int hom = h == Homogeneous::on ? 1 : 0;
  Mat<T> At(g.N * PQ, g.patch_size() + hom);
  im2col<T>(g, x, 0, g.N, At);
  if (hom) At.col(g.patch_size()).setOnes();
  return At.transpose();
}

namespace {

/// scale · Σ_i Xᵢᵀ Xᵢ over items i < count as a d × d symmetric matrix, on the engine's threads:
/// the items are dealt to G = min(kFactorGroups, count) groups (item i to group i mod G), each group's
/// symmetric rank updates run on one thread into its own lower triangle, and the groups are added
/// in order: the bits depend on the shapes only, not on the thread count. `item(i, work)` returns
/// Xᵢ (rows × d), built in `work` if it must be (a thread's scratch, whole on that thread).
constexpr int kFactorGroups = 8;

template <class T, class Item>
Mat<T> grouped_gram(int d, int count, T scale, Item&& item) {
  std::vector<Mat<T>> lower(std::size_t(std::min(kFactorGroups, count)));
  const int groups = int(lower.size());
  parallel_for(groups, [&](int grp, int) {
    Mat<T>& L = lower[std::size_t(grp)];
    L.setZero(d, d);
    for (int i = grp; i < count; i += groups)
      L.template selfadjointView<Eigen::Lower>().rankUpdate(item(i).transpose());
  });
  // Scaled once, after the sums: on integer inputs every sum is exact and so is the factor's one
  // rounding (crosscheck --exact), whatever the number of items and groups.
  for (std::size_t grp = 1; grp < lower.size(); ++grp) lower[0] += lower[grp];
  lower[0] *= scale;
  return lower[0].template selfadjointView<Eigen::Lower>();
}

}  // namespace

template <class T>
Mat<T> conv2d_kfc_input_factor(const Conv2dGeometry& g, const Mat<T>& x, Homogeneous h) {
  g.validate();
  detail::check_input("conv2d_kfc_input_factor", g, x);
  const int hom = h == Homogeneous::on ? 1 : 0, d = g.patch_size() + hom;
  const PassChunks c(g, sizeof(T));
  const T scale = T(1) / (T(g.N) * T(c.PQ));
  return grouped_gram<T>(d, c.count, scale, [&](int i) {
    // Chunk i's patches (its examples × P·Q rows), with the homogeneous column of ones.
    const int nb = c.size(i);
    auto At = thread_scratch<T, Scratch::conv_patches>(long(c.per) * c.PQ, d);
    im2col<T>(g, x, c.first(i), nb, At);
    if (hom) At.col(g.patch_size()).setOnes();
    return At.topRows(nb * c.PQ);
  });
}

template <class T>
Mat<T> conv2d_kfc_output_factor(const Conv2dGeometry& g, const Mat<T>& ds) {
  g.validate();
  detail::check_output("conv2d_kfc_output_factor", "ds (K·P·Q × N)", g, ds);
  const long PQ = long(g.P()) * g.Q();
  const T scale = T(1) / (T(g.N) * T(PQ));
  // Example n's column viewed as P·Q × K: row t is ds_{n,t}ᵀ.
  return grouped_gram<T>(g.K, g.N, scale,
                         [&](int n) { return Eigen::Map<const Mat<T>>(ds.col(n).data(), PQ, g.K); });
}

#define WDLAB_INSTANTIATE(T)                                                                     \
  template void conv2d_fprop<T>(const Conv2dGeometry&, const Mat<T>&, const Mat<T>&,             \
                                const Vec<T>*, Mat<T>&);                                         \
  template void conv2d_bprop_data<T>(const Conv2dGeometry&, const Mat<T>&, const Mat<T>&,        \
                                     Mat<T>&);                                                   \
  template void conv2d_bprop_filter<T>(const Conv2dGeometry&, const Mat<T>&, const Mat<T>&,      \
                                       Mat<T>&, Vec<T>*);                                        \
  template void conv2d_bprop<T>(const Conv2dGeometry&, const Mat<T>&, const Mat<T>&, const Mat<T>&, \
                                Mat<T>&, Vec<T>*, Mat<T>*);                                      \
  template Mat<T> conv2d_patches<T>(const Conv2dGeometry&, const Mat<T>&, Homogeneous);          \
  template Mat<T> conv2d_kfc_input_factor<T>(const Conv2dGeometry&, const Mat<T>&, Homogeneous); \
  template Mat<T> conv2d_kfc_output_factor<T>(const Conv2dGeometry&, const Mat<T>&);
WDLAB_INSTANTIATE(double)
WDLAB_INSTANTIATE(float)
#undef WDLAB_INSTANTIATE

}  // namespace wdlab::ref

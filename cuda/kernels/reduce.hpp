#pragma once
// Deterministic two-level reductions as kernel bodies. Level 1: each index sums a fixed set of
// entries (a strided lane per channel, a contiguous chunk for flat sums; in a fixed order, in
// double) into a partial; level 2: one index per output sums its partials in order. No atomics, so the GPU result does not depend on thread
// scheduling and equals the host launcher's up to the device's double arithmetic.
//
// Per-channel sums over NCHW data: channel c of example n is the run x[(n·C + c)·HW + j],
// j < HW; its m = N·HW entries are numbered e = n·HW + j. Dense N×K data is HW = 1.
#include "common/reduction_layout.hpp"
#include "cuda/kernels/hd.hpp"

namespace wdlab::cuda::kernels {

// The split of the work (lanes per channel, flat chunks) and the scratch it needs live in
// common/reduction_layout.hpp, shared with the host's device-memory plan.
using reduction::channel_lanes;
using reduction::chunk_count;

/// What a channel reduction sums per entry. `a`, `b` are NCHW tensors; `mean` per channel.
enum class ChannelTerm : std::uint32_t {
  value = 0,         // a
  centred_square,    // (a − mean[c])²   (BN variance, two-pass as the reference)
  product,           // a · b            (BN backward: Σ dy ⊙ x̂)
};

/// Lane k of channel c: the NCHW offsets (n·C + c)·HW + j of its entries e = n·HW + j =
/// k, k+lanes, k+2·lanes, ... in that order. On the device neighbouring lanes read neighbouring
/// addresses (coalesced), where a lane per contiguous chunk made neighbours read 1024 entries
/// apart. The walk adds lanes = q·HW + r to (n, j), so there is no division per entry.
struct ChannelLane {
  Index C, c, HW, q, r, n, j;
  WDLAB_HD ChannelLane(Index C_, Index HW_, Index lanes, Index c_, Index k)
      : C(C_), c(c_), HW(HW_), q(lanes / HW_), r(lanes % HW_), n(k / HW_), j(k % HW_) {}
  WDLAB_HD Index offset() const { return (n * C + c) * HW + j; }
  WDLAB_HD void next() {
    n += q;
    j += r;
    if (j >= HW) {
      j -= HW;
      ++n;
    }
  }
};

/// partial[c·lanes + k] = Σ_{e ≡ k (mod lanes), e < m} term(c, e), e ascending, in double.
/// Index space C·lanes; lane k of channel c walks its entries as ChannelLane.
struct ChannelPartialSums {
  const float* a;
  const float* b;       // product only
  const double* mean;   // centred_square only
  double* partial;
  Index C, HW, m, lanes;  // m = N·HW
  ChannelTerm term;
  WDLAB_HD void operator()(Index i) const {
    const Index c = i / lanes, k = i % lanes;
    ChannelLane lane(C, HW, lanes, c, k);
    double s = 0.0;
    for (Index e = k; e < m; e += lanes, lane.next()) {
      const Index o = lane.offset();
      const double v = double(a[o]);
      if (term == ChannelTerm::value) s += v;
      else if (term == ChannelTerm::centred_square) s += (v - mean[c]) * (v - mean[c]);
      else s += v * double(b[o]);
    }
    partial[i] = s;
  }
};

/// out[r] = scale · Σ_k partial[r·chunks + k] (k in order). Index space: rows.
struct SumPartials {
  const double* partial;
  double* out;
  Index chunks;
  double scale;
  WDLAB_HD void operator()(Index r) const {
    double s = 0.0;
    for (Index k = 0; k < chunks; ++k) s += partial[r * chunks + k];
    out[r] = scale * s;
  }
};

/// The same as float (bias gradients, which are float tensors): out[r] (=|+=) Σ partials.
struct SumPartialsToFloat {
  const double* partial;
  float* out;
  Index chunks;
  Accumulate mode;
  WDLAB_HD void operator()(Index r) const {
    double s = 0.0;
    for (Index k = 0; k < chunks; ++k) s += partial[r * chunks + k];
    store(mode, &out[r], float(s));
  }
};

/// Flat reductions over n floats: the chunk's Σx, Σx² and count of non-finite entries.
/// partial[3k + {0,1,2}]. Index space: chunk_count(n, chunk).
struct FlatPartialStats {
  const float* x;
  double* partial;
  Index n, chunk;
  WDLAB_HD void operator()(Index k) const {
    const Index end = (k + 1) * chunk < n ? (k + 1) * chunk : n;
    double s = 0.0, s2 = 0.0, bad = 0.0;
    for (Index i = k * chunk; i < end; ++i) {
      const double v = double(x[i]);
      if (!is_finite(v)) {
        bad += 1.0;
        continue;  // Σ and Σ² of the finite entries; the count says whether there were others
      }
      s += v;
      s2 += v * v;
    }
    partial[3 * k] = s;
    partial[3 * k + 1] = s2;
    partial[3 * k + 2] = bad;
  }
};

/// out[0..2] (=|+=) Σ over chunks of the FlatPartialStats triples. Index space: 1.
struct FlatStatsTotal {
  const double* partial;
  double* out;
  Index chunks;
  Accumulate mode;
  WDLAB_HD void operator()(Index) const {
    double t[3] = {0.0, 0.0, 0.0};
    for (Index k = 0; k < chunks; ++k)
      for (int j = 0; j < 3; ++j) t[j] += partial[3 * k + j];
    for (int j = 0; j < 3; ++j) out[j] = mode == Accumulate::add ? out[j] + t[j] : t[j];
  }
};

}  // namespace wdlab::cuda::kernels

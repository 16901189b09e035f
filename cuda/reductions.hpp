#pragma once
// Deterministic reductions on the device, from the two-level bodies of cuda/kernels/reduce.hpp:
// per channel, partial sums over kernels::channel_lanes(m) strided lanes; flat, over chunks of
// kReduceChunk entries; then one ordered sum per output. The partial buffer is the caller's
// scratch (partials_needed elements).
#include <cuda_runtime_api.h>

#include "cuda/kernels/reduce.hpp"

namespace wdlab::cuda {

inline constexpr kernels::Index kReduceChunk = reduction::kFlatChunk;

/// Scratch doubles for a per-channel reduction of C channels of m entries, or a flat one of n
/// (common/reduction_layout.hpp, which the device-memory plan counts with).
inline kernels::Index channel_partials_needed(kernels::Index C, kernels::Index m) {
  return reduction::channel_partials(C, m);
}
inline kernels::Index flat_partials_needed(kernels::Index n) { return reduction::flat_partials(n); }

/// out[c] = scale · Σ_e term(c, e) over NCHW data (see ChannelPartialSums), in double.
void channel_sums(cudaStream_t stream, const float* a, const float* b, const double* mean,
                  kernels::Index N, kernels::Index C, kernels::Index HW, kernels::ChannelTerm term,
                  double scale, double* out, double* partial);

/// BN's backward sums with the ReLU after it fused (kernels::BnReluPartialSums): sums[c] = Σ dŷ,
/// sums[C + c] = Σ dŷ ⊙ x̂ with dŷ = relu_cotangent(y, dr), equal bit for bit to two channel_sums
/// (value, product; scale 1) over a stored dŷ. dyhat ≠ null also stores dŷ. The partial buffer
/// holds bn_relu_partials_needed(C, m) elements.
inline kernels::Index bn_relu_partials_needed(kernels::Index C, kernels::Index m) {
  return reduction::bn_backward_partials(C, m);
}
void bn_relu_backward_sums(cudaStream_t stream, const float* dr, const float* y, const float* xhat,
                           float* dyhat, kernels::Index N, kernels::Index C, kernels::Index HW,
                           double* sums, double* partial);

/// out[c] (=|+=) Σ_e a(c, e) as float (bias gradients: Σ over N and positions of dy).
void channel_sums_to_float(cudaStream_t stream, const float* a, kernels::Index N,
                           kernels::Index C, kernels::Index HW, float* out,
                           kernels::Accumulate mode, double* partial);

/// out[0..2] (=|+=) Σx, Σx², #non-finite over x[0..n).
void flat_stats(cudaStream_t stream, const float* x, kernels::Index n, double* out,
                kernels::Accumulate mode, double* partial);

}  // namespace wdlab::cuda

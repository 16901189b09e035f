#include "cuda/reductions.hpp"

#include "cuda/kernels/batchnorm.hpp"
#include "cuda/kernels/launch.hpp"

namespace wdlab::cuda {

using kernels::Index;
using kernels::launch_device;


void channel_sums(cudaStream_t stream, const float* a, const float* b, const double* mean, Index N,
                  Index C, Index HW, kernels::ChannelTerm term, double scale, double* out,
                  double* partial) {
  const Index m = N * HW, lanes = kernels::channel_lanes(m);
  launch_device(stream, C * lanes, kernels::ChannelPartialSums{a, b, mean, partial, C, HW, m, lanes, term});
  launch_device(stream, C, kernels::SumPartials{partial, out, lanes, scale});
}

void bn_relu_backward_sums(cudaStream_t stream, const float* dr, const float* y, const float* xhat,
                           float* dyhat, Index N, Index C, Index HW, double* sums, double* partial) {
  const Index m = N * HW, lanes = kernels::channel_lanes(m);
  launch_device(stream, C * lanes, kernels::BnReluPartialSums{dr, y, xhat, dyhat, partial, C, HW, m, lanes});
  launch_device(stream, 2 * C, kernels::SumPartials{partial, sums, lanes, 1.0});
}

void channel_sums_to_float(cudaStream_t stream, const float* a, Index N, Index C, Index HW,
                           float* out, kernels::Accumulate mode, double* partial) {
  const Index m = N * HW, lanes = kernels::channel_lanes(m);
  launch_device(stream, C * lanes,
                kernels::ChannelPartialSums{a, nullptr, nullptr, partial, C, HW, m, lanes, kernels::ChannelTerm::value});
  launch_device(stream, C, kernels::SumPartialsToFloat{partial, out, lanes, mode});
}

void flat_stats(cudaStream_t stream, const float* x, Index n, double* out, kernels::Accumulate mode,
                double* partial) {
  const Index chunks = kernels::chunk_count(n, kReduceChunk);
  launch_device(stream, chunks, kernels::FlatPartialStats{x, partial, n, kReduceChunk});
  launch_device(stream, 1, kernels::FlatStatsTotal{partial, out, chunks, mode});
}

}  // namespace wdlab::cuda

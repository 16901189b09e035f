// The layer kernel bodies' device launchers (elementwise, reductions, BN, pooling, patches).
#include "cuda/kernels/batchnorm.hpp"
#include "cuda/kernels/device_launch.cuh"
#include "cuda/kernels/elementwise.hpp"
#include "cuda/kernels/patches.hpp"
#include "cuda/kernels/pool.hpp"
#include "cuda/kernels/reduce.hpp"

namespace wdlab::cuda::kernels {

#define WDLAB_INSTANTIATE_LAUNCH(Body) \
  template void launch_device<Body>(cudaStream_t, Index, const Body&);
WDLAB_INSTANTIATE_LAUNCH(ReluForward)
WDLAB_INSTANTIATE_LAUNCH(ReluBackward)
WDLAB_INSTANTIATE_LAUNCH(BiasAdd)
WDLAB_INSTANTIATE_LAUNCH(ResidualAdd)
WDLAB_INSTANTIATE_LAUNCH(AccumulateInto)
WDLAB_INSTANTIATE_LAUNCH(GlobalAvgPoolForward)
WDLAB_INSTANTIATE_LAUNCH(GlobalAvgPoolBackward)
WDLAB_INSTANTIATE_LAUNCH(ChannelPartialSums)
WDLAB_INSTANTIATE_LAUNCH(SumPartials)
WDLAB_INSTANTIATE_LAUNCH(SumPartialsToFloat)
WDLAB_INSTANTIATE_LAUNCH(FlatPartialStats)
WDLAB_INSTANTIATE_LAUNCH(FlatStatsTotal)
WDLAB_INSTANTIATE_LAUNCH(BnInvStd)
WDLAB_INSTANTIATE_LAUNCH(BnNormalize)
WDLAB_INSTANTIATE_LAUNCH(BnEvalForward)
WDLAB_INSTANTIATE_LAUNCH(BnRunningUpdate)
WDLAB_INSTANTIATE_LAUNCH(BnBackward)
WDLAB_INSTANTIATE_LAUNCH(MaxPoolForward)
WDLAB_INSTANTIATE_LAUNCH(MaxPoolBackward)
WDLAB_INSTANTIATE_LAUNCH(ConvPatches)
WDLAB_INSTANTIATE_LAUNCH(CotangentColumns)
#undef WDLAB_INSTANTIATE_LAUNCH

}  // namespace wdlab::cuda::kernels

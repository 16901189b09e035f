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
WDLAB_ELEMENTWISE_BODIES(WDLAB_INSTANTIATE_LAUNCH)
WDLAB_POOL_BODIES(WDLAB_INSTANTIATE_LAUNCH)
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
WDLAB_INSTANTIATE_LAUNCH(BnReluPartialSums)
WDLAB_INSTANTIATE_LAUNCH(ConvPatches)
WDLAB_INSTANTIATE_LAUNCH(CotangentColumns)
#undef WDLAB_INSTANTIATE_LAUNCH

}  // namespace wdlab::cuda::kernels

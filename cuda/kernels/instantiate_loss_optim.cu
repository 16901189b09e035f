// The loss, K-FAC sampler, augmentation and optimizer kernel bodies' device launchers.
#include "cuda/kernels/augment.hpp"
#include "cuda/kernels/device_launch.cuh"
#include "cuda/kernels/loss.hpp"
#include "cuda/kernels/optim.hpp"

namespace wdlab::cuda::kernels {

#define WDLAB_INSTANTIATE_LAUNCH(Body) \
  template void launch_device<Body>(cudaStream_t, Index, const Body&);
WDLAB_INSTANTIATE_LAUNCH(SoftmaxCrossEntropy)
WDLAB_INSTANTIATE_LAUNCH(SquaredError)
WDLAB_INSTANTIATE_LAUNCH(LossTotals)
WDLAB_INSTANTIATE_LAUNCH(FisherCotangent)
WDLAB_INSTANTIATE_LAUNCH(GaussianProbes)
WDLAB_INSTANTIATE_LAUNCH(AugmentCropFlip)
WDLAB_OPTIM_UPDATE_BODIES(WDLAB_INSTANTIATE_LAUNCH)  // SgdUpdate, AdamUpdate, ... (kernels/optim.hpp)
#undef WDLAB_INSTANTIATE_LAUNCH

}  // namespace wdlab::cuda::kernels

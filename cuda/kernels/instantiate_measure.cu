// The measure / rescale kernel bodies' device launchers (cuda/kernels/measure.hpp).
#include "cuda/kernels/device_launch.cuh"
#include "cuda/kernels/measure.hpp"

namespace wdlab::cuda::kernels {

#define WDLAB_INSTANTIATE_LAUNCH(Body) \
  template void launch_device<Body>(cudaStream_t, Index, const Body&);
WDLAB_INSTANTIATE_LAUNCH(OneHotCotangent)
WDLAB_INSTANTIATE_LAUNCH(FisherColumnCotangent)
WDLAB_INSTANTIATE_LAUNCH(JacobianProbe)
WDLAB_INSTANTIATE_LAUNCH(SignColumns)
WDLAB_INSTANTIATE_LAUNCH(BnEvalBackward)
WDLAB_INSTANTIATE_LAUNCH(SegmentPartialDots)
WDLAB_INSTANTIATE_LAUNCH(Scale)
#undef WDLAB_INSTANTIATE_LAUNCH

}  // namespace wdlab::cuda::kernels

// The K-FAC kernel bodies' device launchers (patch and cotangent-column bodies are in
// instantiate_layers.cu).
#include "cuda/kernels/device_launch.cuh"
#include "cuda/kernels/kfac.hpp"

namespace wdlab::cuda::kernels {

#define WDLAB_INSTANTIATE_LAUNCH(Body) \
  template void launch_device<Body>(cudaStream_t, Index, const Body&);
WDLAB_INSTANTIATE_LAUNCH(SymmetrizeLower)
WDLAB_INSTANTIATE_LAUNCH(AddDiagonal)
WDLAB_INSTANTIATE_LAUNCH(DiagonalStats)
WDLAB_INSTANTIATE_LAUNCH(FactorCombine)
WDLAB_INSTANTIATE_LAUNCH(GatherBlockGradient)
WDLAB_INSTANTIATE_LAUNCH(ScatterBlockUpdate)
WDLAB_INSTANTIATE_LAUNCH(AddL2)
WDLAB_INSTANTIATE_LAUNCH(DotPartials)
WDLAB_INSTANTIATE_LAUNCH(KlClipScale)
WDLAB_INSTANTIATE_LAUNCH(KfacUpdate)
WDLAB_INSTANTIATE_LAUNCH(ScaleColumns)
WDLAB_INSTANTIATE_LAUNCH(ToDouble)
#undef WDLAB_INSTANTIATE_LAUNCH

}  // namespace wdlab::cuda::kernels

// The resident-data kernel bodies' device launchers (gather, gather with augmentation, labels).
#include "cuda/kernels/device_launch.cuh"
#include "cuda/kernels/gather.hpp"

namespace wdlab::cuda::kernels {

template void launch_device<GatherImages>(cudaStream_t, Index, const GatherImages&);
template void launch_device<GatherLabels>(cudaStream_t, Index, const GatherLabels&);

}  // namespace wdlab::cuda::kernels

#pragma once
// The host launcher: runs a kernel body over its index space on the CPU, in index order. The
// CPU tests use it to check a body against the reference; the device launcher
// (device_launch.cuh) runs the same body on the GPU. Bodies must not depend on the order in
// which indices run (each index writes only its own outputs), so both launchers agree.
#include "cuda/kernels/hd.hpp"

namespace wdlab::cuda::kernels {

template <class Body>
void launch_host(Index n, const Body& body) {
  for (Index i = 0; i < n; ++i) body(i);
}

}  // namespace wdlab::cuda::kernels

#pragma once
// Test code: out[i] = i on the context's stream, the smallest kernel there is; the GPU tests run it
// to show that this build's code (sm_90 SASS, compute_90 PTX) loads and runs on the device.
#include <cstdint>

#include "cuda/context.hpp"
#include "cuda/device_buffer.hpp"

namespace wdlab::cuda {

/// out[i] = i for i < out.size(); queued on ctx.stream(), does not wait.
void iota(const Context& ctx, DeviceBuffer<std::int32_t>& out);

}  // namespace wdlab::cuda

#include "common/geometry.hpp"

#include <fmt/format.h>

#include "common/errors.hpp"

namespace wdlab {

namespace {
void positive(const char* field, int v) {
  if (v < 1) throw UsageError(field, fmt::format("must be >= 1, got {}", v));
}
}  // namespace

std::string Conv2dGeometry::describe() const {
  return fmt::format("conv N={} C={} H={} W={} K={} R={} S={} pad={} stride={} -> P={} Q={}", N, C,
                     H, W, K, R, S, pad, stride, P(), Q());
}

void Conv2dGeometry::validate() const {
  positive("conv.N", N);
  positive("conv.C", C);
  positive("conv.H", H);
  positive("conv.W", W);
  positive("conv.K", K);
  positive("conv.R", R);
  positive("conv.S", S);
  positive("conv.stride", stride);
  if (pad < 0) throw UsageError("conv.pad", fmt::format("must be >= 0, got {}", pad));
  if (H + 2 * pad < R || W + 2 * pad < S)
    throw UsageError("conv.R/S", fmt::format("kernel {}x{} larger than padded input {}x{}", R, S,
                                             H + 2 * pad, W + 2 * pad));
}

std::string Pool2dGeometry::describe() const {
  return fmt::format("maxpool N={} C={} H={} W={} window={} stride={} -> P={} Q={}", N, C, H, W,
                     window, stride, P(), Q());
}

void Pool2dGeometry::validate() const {
  positive("pool.N", N);
  positive("pool.C", C);
  positive("pool.H", H);
  positive("pool.W", W);
  positive("pool.window", window);
  positive("pool.stride", stride);
  if (H < window || W < window)
    throw UsageError("pool.window", fmt::format("window {} larger than input {}x{}", window, H, W));
}

std::string DenseGeometry::describe() const {
  return fmt::format("dense N={} in={} out={}", N, in, out);
}

void DenseGeometry::validate() const {
  positive("dense.N", N);
  positive("dense.in", in);
  positive("dense.out", out);
}

}  // namespace wdlab

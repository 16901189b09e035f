#pragma once
// The inputs of a case, made once from the shared Philox RNG and handed to both sides, so the
// two sides differ only in how they compute. Gaussian inputs and Glorot weights are rounded to
// float32 (a float side then sees exactly the numbers a double side sees); exact mode draws
// integers in [-8, 7].
#include <cstdint>
#include <vector>

#include "apps/crosscheck/cases.hpp"
#include "apps/crosscheck/tensors.hpp"

namespace wdlab::xcheck {

struct Batch {
  std::vector<double> x;  // N × C·H·W, NCHW (example n at [n·CHW, (n+1)·CHW))
  std::vector<std::int32_t> labels;  // N, in [0, classes)
};

struct CaseData {
  std::vector<Batch> batches;      // one per step (optimizer cases), else one
  std::vector<double> cotangent;   // layer cases: ∂L/∂y, NCHW of the layer's output
  std::vector<double> outputs;     // loss cases: K×N logits / outputs, example-major (n·K + k)
  std::vector<double> targets;     // squared error: K×N targets, same layout
  Tensors params;                  // every tensor of spec.params(): PyTorch name, shape, order
};

CaseData make_case_data(const Case& c);

}  // namespace wdlab::xcheck

#include "cuda/conv_plan.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "common/errors.hpp"

namespace wdlab::cuda {

std::string to_string(MathMode m) { return m == MathMode::fp32 ? "fp32" : "tf32"; }
std::string to_string(AlgoPolicy p) {
  switch (p) {
    case AlgoPolicy::fastest: return "fastest";
    case AlgoPolicy::deterministic: return "deterministic";
    case AlgoPolicy::exact: return "exact";
  }
  return "?";
}

bool transform_free(ConvPass pass, int algo) {
  switch (pass) {
    case ConvPass::forward: return algo >= 0 && algo <= 3;          // IMPLICIT_GEMM, PRECOMP, GEMM, DIRECT
    case ConvPass::backward_data: return algo == 0 || algo == 1;    // ALGO_0, ALGO_1
    case ConvPass::backward_filter: return algo == 0 || algo == 1 || algo == 3;  // ALGO_0, ALGO_1, ALGO_3
  }
  return false;
}
std::string to_string(CandidateMath m) {
  switch (m) {
    case CandidateMath::fma: return "fma";
    case CandidateMath::default_math: return "default";
    case CandidateMath::tensor_op: return "tensor_op";
  }
  return "?";
}

bool math_allowed(MathMode m, CandidateMath c) {
  switch (m) {
    case MathMode::fp32: return c != CandidateMath::tensor_op;
    case MathMode::tf32: return true;
  }
  return false;
}

std::string to_string(ConvPass p) {
  switch (p) {
    case ConvPass::forward: return "forward";
    case ConvPass::backward_data: return "backward_data";
    case ConvPass::backward_filter: return "backward_filter";
  }
  return "unknown";
}

TensorDims packed_nchw(int n, int c, int h, int w) {
  return TensorDims{n, c, h, w, c * h * w, h * w, w, 1};
}

ConvDescriptorParams conv_descriptor_params(const Conv2dGeometry& g, MathMode math) {
  g.validate();
  ConvDescriptorParams d;
  d.x = packed_nchw(g.N, g.C, g.H, g.W);
  d.y = packed_nchw(g.N, g.K, g.P(), g.Q());
  d.k = g.K;
  d.c = g.C;
  d.r = g.R;
  d.s = g.S;
  d.pad_h = d.pad_w = g.pad;
  d.stride_h = d.stride_w = g.stride;
  d.math = math;
  return d;
}

std::string AlgoChoice::describe() const {
  return fmt::format("{} algo {} ({}, {:.1f} MiB workspace)", to_string(pass), algo,
                     deterministic ? "deterministic" : "non-deterministic",
                     double(workspace_bytes) / (1024.0 * 1024.0));
}

AlgoChoice choose_algorithm(ConvPass pass, std::span<const AlgoCandidate> ranked, AlgoPolicy policy,
                            MathMode math, std::size_t workspace_limit, const std::string& shape) {
  std::string refused;
  for (const AlgoCandidate& c : ranked) {
    std::string why;
    if (c.status != 0) why = fmt::format("status {}", c.status);
    else if (c.workspace_bytes > workspace_limit)
      why = fmt::format("workspace {} > limit {}", c.workspace_bytes, workspace_limit);
    else if (policy != AlgoPolicy::fastest && !c.deterministic) why = "non-deterministic";
    else if (policy == AlgoPolicy::exact && !transform_free(pass, c.algo)) why = "transform (FFT/Winograd)";
    else if (!math_allowed(math, c.math))
      why = fmt::format("math {} under {}", to_string(c.math), to_string(math));
    if (why.empty()) return AlgoChoice{pass, c.algo, c.workspace_bytes, c.deterministic, c.math};
    refused += fmt::format("{}algo {}: {}", refused.empty() ? "" : "; ", c.algo, why);
  }
  throw DeviceError(fmt::format("cuDNN has no {} algorithm for {} under policy {}, math {}: {}",
                                to_string(pass), shape, to_string(policy), to_string(math),
                                refused.empty() ? "no candidates" : refused));
}

AlgoCache::Key AlgoCache::key(ConvPass pass, const Conv2dGeometry& g, MathMode math,
                              AlgoPolicy policy) {
  return Key{int(pass), g.N, g.C, g.H, g.W, g.K, g.R, g.S, g.pad, g.stride, int(math), int(policy), 0};
}

const AlgoChoice* AlgoCache::find(const Key& k) const {
  const auto it = choices_.find(k);
  return it == choices_.end() ? nullptr : &it->second;
}

const AlgoChoice& AlgoCache::insert(const Key& k, AlgoChoice choice) {
  return choices_.insert_or_assign(k, std::move(choice)).first->second;
}

std::size_t AlgoCache::max_workspace_bytes() const {
  std::size_t m = 0;
  for (const auto& [k, c] : choices_) m = std::max(m, c.workspace_bytes);
  return m;
}

std::vector<std::string> AlgoCache::describe() const {
  std::vector<std::string> out;
  for (const auto& [k, c] : choices_)
    out.push_back(fmt::format("N={} C={} H={} W={} K={} R={} S={} pad={} stride={}: {}",
                              std::get<1>(k), std::get<2>(k), std::get<3>(k), std::get<4>(k),
                              std::get<5>(k), std::get<6>(k), std::get<7>(k), std::get<8>(k),
                              std::get<9>(k), c.describe()));
  return out;
}

}  // namespace wdlab::cuda

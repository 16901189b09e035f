// cuDNN convolutions; see cuda/conv.hpp.
#include "cuda/conv.hpp"

#include <cudnn.h>
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <vector>

#include "cuda/check.hpp"

namespace wdlab::cuda {
namespace {

// transform_free (conv_plan.cpp, host-only) names algorithms by these values.
static_assert(CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM == 0 && CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM == 1 &&
              CUDNN_CONVOLUTION_FWD_ALGO_GEMM == 2 && CUDNN_CONVOLUTION_FWD_ALGO_DIRECT == 3 &&
              CUDNN_CONVOLUTION_FWD_ALGO_FFT == 4 && CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD == 6);
static_assert(CUDNN_CONVOLUTION_BWD_DATA_ALGO_0 == 0 && CUDNN_CONVOLUTION_BWD_DATA_ALGO_1 == 1 &&
              CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT == 2 && CUDNN_CONVOLUTION_BWD_DATA_ALGO_WINOGRAD == 4);
static_assert(CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0 == 0 && CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1 == 1 &&
              CUDNN_CONVOLUTION_BWD_FILTER_ALGO_FFT == 2 && CUDNN_CONVOLUTION_BWD_FILTER_ALGO_3 == 3 &&
              CUDNN_CONVOLUTION_BWD_FILTER_ALGO_WINOGRAD_NONFUSED == 5 && CUDNN_CONVOLUTION_BWD_FILTER_ALGO_FFT_TILING == 6);

// RAII owners of the descriptors of one call (host objects, microseconds to make).
struct TensorDesc {
  cudnnTensorDescriptor_t d = nullptr;
  explicit TensorDesc(const TensorDims& t) {
    WDLAB_CUDNN_CHECK(cudnnCreateTensorDescriptor(&d));
    const cudnnStatus_t s = cudnnSetTensor4dDescriptorEx(d, CUDNN_DATA_FLOAT, t.n, t.c, t.h, t.w,
                                                         t.stride_n, t.stride_c, t.stride_h, t.stride_w);
    if (s != CUDNN_STATUS_SUCCESS) {
      static_cast<void>(cudnnDestroyTensorDescriptor(d));
      WDLAB_CUDNN_CHECK(s);
    }
  }
  ~TensorDesc() { static_cast<void>(cudnnDestroyTensorDescriptor(d)); }
  TensorDesc(const TensorDesc&) = delete;
  TensorDesc& operator=(const TensorDesc&) = delete;
};

struct FilterDesc {
  cudnnFilterDescriptor_t d = nullptr;
  explicit FilterDesc(const ConvDescriptorParams& p) {
    WDLAB_CUDNN_CHECK(cudnnCreateFilterDescriptor(&d));
    const cudnnStatus_t s =
        cudnnSetFilter4dDescriptor(d, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, p.k, p.c, p.r, p.s);
    if (s != CUDNN_STATUS_SUCCESS) {
      static_cast<void>(cudnnDestroyFilterDescriptor(d));
      WDLAB_CUDNN_CHECK(s);
    }
  }
  ~FilterDesc() { static_cast<void>(cudnnDestroyFilterDescriptor(d)); }
  FilterDesc(const FilterDesc&) = delete;
  FilterDesc& operator=(const FilterDesc&) = delete;
};

struct ConvDesc {
  cudnnConvolutionDescriptor_t d = nullptr;
  explicit ConvDesc(const ConvDescriptorParams& p) {
    WDLAB_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&d));
    cudnnStatus_t s = cudnnSetConvolution2dDescriptor(
        d, p.pad_h, p.pad_w, p.stride_h, p.stride_w, p.dilation_h, p.dilation_w,
        p.cross_correlation ? CUDNN_CROSS_CORRELATION : CUDNN_CONVOLUTION, CUDNN_DATA_FLOAT);
    // FMA math keeps float32 exact-to-FP32 (no TF32 tensor cores) unless TF32 was asked for.
    if (s == CUDNN_STATUS_SUCCESS)
      s = cudnnSetConvolutionMathType(
          d, p.math == MathMode::tf32 ? CUDNN_TENSOR_OP_MATH : CUDNN_FMA_MATH);
    if (s != CUDNN_STATUS_SUCCESS) {
      static_cast<void>(cudnnDestroyConvolutionDescriptor(d));
      WDLAB_CUDNN_CHECK(s);
    }
  }
  ~ConvDesc() { static_cast<void>(cudnnDestroyConvolutionDescriptor(d)); }
  ConvDesc(const ConvDesc&) = delete;
  ConvDesc& operator=(const ConvDesc&) = delete;
};

struct Descriptors {
  ConvDescriptorParams p;
  TensorDesc x, y;
  FilterDesc w;
  ConvDesc conv;
  explicit Descriptors(const ConvDescriptorParams& params)
      : p(params), x(params.x), y(params.y), w(params), conv(params) {}
};

/// cuDNN's output shape must be ours (a mismatch is a bug in conv_descriptor_params).
void check_output_dims(const Descriptors& d, const Conv2dGeometry& g) {
  int n = 0, c = 0, h = 0, w = 0;
  WDLAB_CUDNN_CHECK(cudnnGetConvolution2dForwardOutputDim(d.conv.d, d.x.d, d.w.d, &n, &c, &h, &w));
  if (n != g.N || c != g.K || h != g.P() || w != g.Q())
    throw InternalError(fmt::format("cuDNN output {}x{}x{}x{} differs from {} (P={}, Q={})", n, c,
                                    h, w, g.describe(), g.P(), g.Q()));
}

CandidateMath candidate_math(cudnnMathType_t m) {
  switch (m) {
    case CUDNN_FMA_MATH: return CandidateMath::fma;
    case CUDNN_DEFAULT_MATH: return CandidateMath::default_math;
    case CUDNN_TENSOR_OP_MATH:
    case CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION: return CandidateMath::tensor_op;
  }
  return CandidateMath::tensor_op;  // an unknown future type: treated as tensor cores (refused under fp32)
}

cudnnMathType_t cudnn_math(CandidateMath m) {
  switch (m) {
    case CandidateMath::fma: return CUDNN_FMA_MATH;
    case CandidateMath::default_math: return CUDNN_DEFAULT_MATH;
    case CandidateMath::tensor_op: return CUDNN_TENSOR_OP_MATH;
  }
  return CUDNN_FMA_MATH;
}

/// One ranked entry, its workspace confirmed by cudnnGetConvolution*WorkspaceSize (`query`
/// returns the status and the bytes for an algorithm); a failed query refuses the candidate.
template <class Perf, class Query>
AlgoCandidate candidate_of(const Perf& perf, Query query) {
  AlgoCandidate c{int(perf.algo), int(perf.status), perf.memory, perf.determinism == CUDNN_DETERMINISTIC,
                  candidate_math(perf.mathType)};
  if (c.status != 0) return c;
  std::size_t bytes = 0;
  const cudnnStatus_t s = query(perf.algo, &bytes);
  if (s != CUDNN_STATUS_SUCCESS) c.status = int(s);
  else c.workspace_bytes = std::max(c.workspace_bytes, bytes);
  return c;
}

constexpr int kMaxAlgos = 16;

/// Under tf32 the descriptor takes the chosen candidate's math type, as cuDNN asks of a ranked
/// entry; under fp32 it stays CUDNN_FMA_MATH, so no TF32 can run whatever a candidate reported.
void use_math(const Descriptors& d, MathMode m, const AlgoChoice& a) {
  if (m == MathMode::tf32) WDLAB_CUDNN_CHECK(cudnnSetConvolutionMathType(d.conv.d, cudnn_math(a.math)));
}

/// The cached choice for (pass, g), asking cuDNN's heuristics the first time.
const AlgoChoice& algorithm(Context& ctx, ConvSettings& st, ConvPass pass, const Conv2dGeometry& g,
                            const Descriptors& d) {
  const auto key = AlgoCache::key(pass, g, st.math, st.policy);
  if (const AlgoChoice* c = st.cache.find(key)) return *c;
  check_output_dims(d, g);
  std::vector<AlgoCandidate> ranked;
  int returned = 0;
  switch (pass) {
    case ConvPass::forward: {
      std::array<cudnnConvolutionFwdAlgoPerf_t, kMaxAlgos> perf{};
      WDLAB_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(
          ctx.cudnn(), d.x.d, d.w.d, d.conv.d, d.y.d, kMaxAlgos, &returned, perf.data()));
      const auto query = [&](cudnnConvolutionFwdAlgo_t a, std::size_t* bytes) {
        return cudnnGetConvolutionForwardWorkspaceSize(ctx.cudnn(), d.x.d, d.w.d, d.conv.d, d.y.d, a, bytes);
      };
      for (int i = 0; i < returned; ++i) ranked.push_back(candidate_of(perf[std::size_t(i)], query));
      break;
    }
    case ConvPass::backward_data: {
      std::array<cudnnConvolutionBwdDataAlgoPerf_t, kMaxAlgos> perf{};
      WDLAB_CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithm_v7(
          ctx.cudnn(), d.w.d, d.y.d, d.conv.d, d.x.d, kMaxAlgos, &returned, perf.data()));
      const auto query = [&](cudnnConvolutionBwdDataAlgo_t a, std::size_t* bytes) {
        return cudnnGetConvolutionBackwardDataWorkspaceSize(ctx.cudnn(), d.w.d, d.y.d, d.conv.d, d.x.d, a, bytes);
      };
      for (int i = 0; i < returned; ++i) ranked.push_back(candidate_of(perf[std::size_t(i)], query));
      break;
    }
    case ConvPass::backward_filter: {
      std::array<cudnnConvolutionBwdFilterAlgoPerf_t, kMaxAlgos> perf{};
      WDLAB_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithm_v7(
          ctx.cudnn(), d.x.d, d.y.d, d.conv.d, d.w.d, kMaxAlgos, &returned, perf.data()));
      const auto query = [&](cudnnConvolutionBwdFilterAlgo_t a, std::size_t* bytes) {
        return cudnnGetConvolutionBackwardFilterWorkspaceSize(ctx.cudnn(), d.x.d, d.y.d, d.conv.d, d.w.d, a, bytes);
      };
      for (int i = 0; i < returned; ++i) ranked.push_back(candidate_of(perf[std::size_t(i)], query));
      break;
    }
  }
  return st.cache.insert(key, choose_algorithm(pass, ranked, st.policy, st.math,
                                               st.workspace_limit, g.describe()));
}

}  // namespace

void conv2d_fprop(Context& ctx, ConvSettings& st, const Conv2dGeometry& g, const float* x,
                  const float* w, float* y) {
  const Descriptors d(conv_descriptor_params(g, st.math));
  const AlgoChoice& a = algorithm(ctx, st, ConvPass::forward, g, d);
  use_math(d, st.math, a);
  void* ws = a.workspace_bytes ? ctx.workspace(a.workspace_bytes).data() : nullptr;
  const float one = 1.0f, zero = 0.0f;
  WDLAB_CUDNN_CHECK(cudnnConvolutionForward(ctx.cudnn(), &one, d.x.d, x, d.w.d, w, d.conv.d,
                                            cudnnConvolutionFwdAlgo_t(a.algo), ws,
                                            a.workspace_bytes, &zero, d.y.d, y));
}

void conv2d_bprop_data(Context& ctx, ConvSettings& st, const Conv2dGeometry& g, const float* dy,
                       const float* w, float* dx, kernels::Accumulate mode) {
  const Descriptors d(conv_descriptor_params(g, st.math));
  const AlgoChoice& a = algorithm(ctx, st, ConvPass::backward_data, g, d);
  use_math(d, st.math, a);
  void* ws = a.workspace_bytes ? ctx.workspace(a.workspace_bytes).data() : nullptr;
  const float one = 1.0f, beta = mode == kernels::Accumulate::add ? 1.0f : 0.0f;
  WDLAB_CUDNN_CHECK(cudnnConvolutionBackwardData(ctx.cudnn(), &one, d.w.d, w, d.y.d, dy, d.conv.d,
                                                 cudnnConvolutionBwdDataAlgo_t(a.algo), ws,
                                                 a.workspace_bytes, &beta, d.x.d, dx));
}

void conv2d_bprop_filter(Context& ctx, ConvSettings& st, const Conv2dGeometry& g, const float* x,
                         const float* dy, float* dw) {
  const Descriptors d(conv_descriptor_params(g, st.math));
  const AlgoChoice& a = algorithm(ctx, st, ConvPass::backward_filter, g, d);
  use_math(d, st.math, a);
  void* ws = a.workspace_bytes ? ctx.workspace(a.workspace_bytes).data() : nullptr;
  const float one = 1.0f, zero = 0.0f;
  WDLAB_CUDNN_CHECK(cudnnConvolutionBackwardFilter(ctx.cudnn(), &one, d.x.d, x, d.y.d, dy,
                                                   d.conv.d, cudnnConvolutionBwdFilterAlgo_t(a.algo),
                                                   ws, a.workspace_bytes, &zero, d.w.d, dw));
}

}  // namespace wdlab::cuda

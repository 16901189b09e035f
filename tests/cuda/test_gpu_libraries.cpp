// cuBLAS and cuDNN through a Context's handles on the device: a small SGEMM against a CPU
// product, and a cuDNN op (its ops sub-library loads and runs). Exact mode (STYLE.md §9): inputs
// are small integers, so every product and sum is exact in float and results compare with ==.
#include <doctest/doctest.h>

#include <cublas_v2.h>
#include <cudnn.h>

#include <vector>

#include "cuda/context.hpp"
#include "gpu_guard.hpp"

using namespace wdlab;
using namespace wdlab::cuda;
using wdlab::cuda::testing::require_gpu_or_skip;

namespace {

/// Integers in [−8, 7], column-major, a different pattern per `salt`.
std::vector<float> small_ints(int rows, int cols, int salt) {
  std::vector<float> m(static_cast<std::size_t>(rows) * cols);
  for (int j = 0; j < cols; ++j)
    for (int i = 0; i < rows; ++i)
      m[static_cast<std::size_t>(j) * rows + i] = static_cast<float>((7 * i + 3 * j + salt) % 16 - 8);
  return m;
}

}  // namespace

TEST_CASE("cuBLAS SGEMM on the context's stream equals the CPU product exactly") {
  require_gpu_or_skip();
  Context ctx;
  // C = A B, A: M×K, B: K×N, C: M×N, column-major (cuBLAS's layout), leading dimension = rows.
  const int M = 3, K = 5, N = 4;
  const std::vector<float> a = small_ints(M, K, 1);
  const std::vector<float> b = small_ints(K, N, 5);
  std::vector<float> expected(static_cast<std::size_t>(M) * N, 0.0f);
  for (int j = 0; j < N; ++j)
    for (int i = 0; i < M; ++i) {
      double sum = 0;
      for (int k = 0; k < K; ++k) sum += double(a[k * M + i]) * double(b[j * K + k]);
      expected[j * M + i] = static_cast<float>(sum);
    }

  DeviceBuffer<float> da(a.size()), db(b.size()), dc(expected.size());
  da.copy_from_host(a, ctx.stream());
  db.copy_from_host(b, ctx.stream());
  dc.fill_zero(ctx.stream());
  const float alpha = 1.0f, beta = 0.0f;
  WDLAB_CUBLAS_CHECK(cublasSgemm(ctx.cublas(), CUBLAS_OP_N, CUBLAS_OP_N, M, N, K, &alpha,
                                 da.data(), M, db.data(), K, &beta, dc.data(), M));
  std::vector<float> c(expected.size(), -1.0f);
  dc.copy_to_host(c, ctx.stream());
  CHECK(c == expected);
}

TEST_CASE("cuDNN: the loaded library matches the headers and runs an op on the stream") {
  require_gpu_or_skip();
  Context ctx;
  const std::size_t version = cudnnGetVersion();
  MESSAGE("cuDNN " << version << " loaded, built against " << CUDNN_VERSION);
  CHECK(version / 10000 == CUDNN_MAJOR);

  // y[i] = 2.5 for a 1×2×3×4 NCHW float tensor.
  cudnnTensorDescriptor_t desc = nullptr;
  WDLAB_CUDNN_CHECK(cudnnCreateTensorDescriptor(&desc));
  WDLAB_CUDNN_CHECK(cudnnSetTensor4dDescriptor(desc, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 1, 2, 3, 4));
  DeviceBuffer<float> y(24);
  y.fill_zero(ctx.stream());
  const float value = 2.5f;
  const cudnnStatus_t set = cudnnSetTensor(ctx.cudnn(), desc, y.data(), &value);
  cudnnDestroyTensorDescriptor(desc);
  WDLAB_CUDNN_CHECK(set);
  std::vector<float> host(24, 0.0f);
  y.copy_to_host(host, ctx.stream());
  CHECK(host == std::vector<float>(24, 2.5f));
}

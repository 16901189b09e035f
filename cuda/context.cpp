#include "cuda/context.hpp"

#include <cublas_v2.h>
#include <cudnn.h>
#include <fmt/format.h>

#include <string>
#include <type_traits>
#include <utility>

namespace wdlab::cuda {

static_assert(std::is_same_v<cublasHandle_t, cublasContext*>, "context.hpp: cublasHandle_t");
static_assert(std::is_same_v<cudnnHandle_t, cudnnContext*>, "context.hpp: cudnnHandle_t");

namespace {

// One owner per resource so a throw half-way through construction releases what was made.
// Destructors cannot throw; a failing destroy means the context already died of a reported error.
struct Stream {
  cudaStream_t handle = nullptr;
  Stream() { WDLAB_CUDA_CHECK(cudaStreamCreateWithFlags(&handle, cudaStreamNonBlocking)); }
  ~Stream() { static_cast<void>(cudaStreamDestroy(handle)); }
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
};

struct Cublas {
  cublasHandle_t handle = nullptr;
  explicit Cublas(cudaStream_t stream) {
    WDLAB_CUBLAS_CHECK(cublasCreate(&handle));
    const cublasStatus_t bound = cublasSetStream(handle, stream);
    if (bound != CUBLAS_STATUS_SUCCESS) {
      static_cast<void>(cublasDestroy(handle));  // the destructor will not run
      WDLAB_CUBLAS_CHECK(bound);
    }
  }
  ~Cublas() { static_cast<void>(cublasDestroy(handle)); }
  Cublas(const Cublas&) = delete;
  Cublas& operator=(const Cublas&) = delete;
};

struct Cudnn {
  cudnnHandle_t handle = nullptr;
  explicit Cudnn(cudaStream_t stream) {
    WDLAB_CUDNN_CHECK(cudnnCreate(&handle));
    const cudnnStatus_t bound = cudnnSetStream(handle, stream);
    if (bound != CUDNN_STATUS_SUCCESS) {
      static_cast<void>(cudnnDestroy(handle));
      WDLAB_CUDNN_CHECK(bound);
    }
  }
  ~Cudnn() { static_cast<void>(cudnnDestroy(handle)); }
  Cudnn(const Cudnn&) = delete;
  Cudnn& operator=(const Cudnn&) = delete;
};

/// Makes device `index` current for this thread and returns its facts, or throws DeviceError
/// saying why it cannot be used.
DeviceInfo bind_usable_device(int index) {
  DeviceStatus status = query_devices();
  if (!status.usable) throw DeviceError(status.reason);
  if (index < 0 || index >= static_cast<int>(status.devices.size()))
    throw DeviceError(fmt::format("CUDA device {} does not exist: {} device(s), 0 to {}", index,
                                  status.devices.size(), status.devices.size() - 1));
  const DeviceInfo& info = status.devices[static_cast<std::size_t>(index)];
  const int min_cc = built_min_compute_capability();
  if (!can_run(info, min_cc))
    throw DeviceError(fmt::format(
        "CUDA device {} ({}) has compute capability {}.{}; this build has code for >= {}.{} "
        "(CMAKE_CUDA_ARCHITECTURES)",
        index, info.name, info.cc_major, info.cc_minor, min_cc / 10, min_cc % 10));
  // Handles and the stream belong to the device current at their creation.
  WDLAB_CUDA_CHECK(cudaSetDevice(index));
  return info;
}

}  // namespace

// Members are destroyed in reverse order: workspace (needs the device), then the handles
// (bound to the stream), then the stream.
struct Context::Impl {
  DeviceInfo info;
  Stream stream;
  Cublas cublas;
  Cudnn cudnn;
  DeviceBuffer<std::byte> workspace;

  explicit Impl(DeviceInfo device)
      : info(std::move(device)),
        stream(),
        cublas(stream.handle),
        cudnn(stream.handle) {}
};

Context::Context(int device) : impl_(std::make_unique<Impl>(bind_usable_device(device))) {}

Context::~Context() {
  // Queued work may still read the workspace; let it finish before the frees below.
  if (impl_) static_cast<void>(cudaStreamSynchronize(impl_->stream.handle));
}

int Context::device() const noexcept { return impl_->info.index; }
const DeviceInfo& Context::info() const noexcept { return impl_->info; }
cudaStream_t Context::stream() const noexcept { return impl_->stream.handle; }
cublasContext* Context::cublas() const noexcept { return impl_->cublas.handle; }
cudnnContext* Context::cudnn() const noexcept { return impl_->cudnn.handle; }
std::size_t Context::workspace_bytes() const noexcept { return impl_->workspace.bytes(); }

DeviceBuffer<std::byte>& Context::workspace(std::size_t bytes) {
  if (bytes > impl_->workspace.size()) {
    synchronize();  // queued work may still use the old buffer
    impl_->workspace = DeviceBuffer<std::byte>();  // free first: peak memory is the new size
    impl_->workspace = DeviceBuffer<std::byte>(bytes);
  }
  return impl_->workspace;
}

void Context::synchronize() const { WDLAB_CUDA_CHECK(cudaStreamSynchronize(impl_->stream.handle)); }

}  // namespace wdlab::cuda

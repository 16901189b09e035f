// `wdlab info`: what this build is and whether a GPU is usable now.
#include <iostream>
#include <sstream>

#include <Eigen/Core>
#include <boost/program_options.hpp>
#include <fmt/format.h>

#include "apps/command.hpp"
#include "wdlab/build_info.hpp"
#if defined(WDLAB_HAVE_CUDA)
#include "cuda/device_query.hpp"
#endif

namespace po = boost::program_options;

namespace wdlab::app {

int cmd_info(const Args& args) {
  po::options_description desc("wdlab info\n\nPrints the version, build and whether a GPU is usable.\n\noptions");
  desc.add_options()("help,h", "this text");
  if (!parse_options(desc, args, [] {})) return 0;
  fmt::print("wdlab {}\n", build::version);
  fmt::print("build type:   {}\n", build::build_type);
  fmt::print("compiler:     {}\n", build::compiler);
  fmt::print("eigen:        {}.{}.{} ({})\n", EIGEN_WORLD_VERSION, EIGEN_MAJOR_VERSION, EIGEN_MINOR_VERSION,
             Eigen::SimdInstructionSetsInUse());
  const CpuRuntime cpu = cpu_runtime();
  fmt::print("blas:         {}\n", cpu.blas);
  fmt::print("blas kernels: {}{}\n", cpu.kernels,
             cpu.coretype_env.empty() ? "" : " (OPENBLAS_CORETYPE=" + cpu.coretype_env + " in the environment)");
  fmt::print("threads:      {} of {} cores (the engine's pool; each product call inside it on {} thread)\n",
             cpu.threads, cpu.cores, cpu.blas_threads);
#if defined(WDLAB_HAVE_CUDA)
  fmt::print("cuda backend: built (nvcc {}, architectures {})\n", build::cuda_compiler,
             build::cuda_architectures);
  const auto st = cuda::query_devices();
  if (st.usable) {
    fmt::print("gpu:          {}\n", cuda::describe(st));
  } else {
    fmt::print("gpu:          {}\n", st.reason);
  }
#else
  fmt::print("cuda backend: not built (no CUDA compiler found, or -DWDLAB_CUDA=OFF)\n");
  fmt::print("gpu:          no usable CUDA device: the CUDA backend is not built\n");
#endif
  return 0;
}

}  // namespace wdlab::app

#include "cuda/launch.hpp"

#include <algorithm>
#include <string>

#include "common/errors.hpp"

namespace wdlab::cuda {

Launch1d launch_1d(std::size_t n, unsigned threads, unsigned max_blocks) {
  WDLAB_CHECK(threads > 0 && threads <= 1024, "threads per block " + std::to_string(threads));
  WDLAB_CHECK(max_blocks > 0, "max_blocks is 0");
  const std::size_t needed = n / threads + (n % threads != 0 ? 1 : 0);  // ⌈n / threads⌉
  return Launch1d{static_cast<unsigned>(std::min<std::size_t>(needed, max_blocks)), threads};
}

}  // namespace wdlab::cuda

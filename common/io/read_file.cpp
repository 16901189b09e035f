#include "common/io/read_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>

#include "common/errors.hpp"

namespace wdlab::io {
namespace {

[[noreturn]] void fail(const std::filesystem::path& path, const char* what, int err) {
  throw DataError(path.string(), std::string(what) + ": " +
                                     std::error_code(err, std::generic_category()).message());
}

// Reads until end of file rather than trusting st_size, which is 0 for /proc files and pipes.
template <class Buffer>
Buffer read_all(const std::filesystem::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail(path, "cannot open", errno);
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0) fail(path, "cannot stat", errno);
  if (S_ISDIR(st.st_mode)) fail(path, "cannot read", EISDIR);
  // One spare byte past st_size lets the read that sees end of file need no regrowth.
  constexpr std::size_t kChunk = std::size_t{1} << 20;
  Buffer out;
  out.resize(S_ISREG(st.st_mode) ? static_cast<std::size_t>(st.st_size) + 1 : kChunk);
  std::size_t used = 0;
  for (;;) {
    if (used == out.size()) out.resize(out.size() + kChunk);
    const ssize_t n = ::read(fd, out.data() + used, out.size() - used);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail(path, "read failed", errno);
    }
    if (n == 0) break;
    used += static_cast<std::size_t>(n);
  }
  out.resize(used);
  return out;
}

}  // namespace

std::vector<std::byte> read_file_bytes(const std::filesystem::path& path) {
  return read_all<std::vector<std::byte>>(path);
}

std::string read_file_text(const std::filesystem::path& path) {
  return read_all<std::string>(path);
}

}  // namespace wdlab::io

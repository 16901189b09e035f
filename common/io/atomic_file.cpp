#include "common/io/atomic_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>
#include <system_error>

#include "common/errors.hpp"
#include "common/fault.hpp"

namespace wdlab::io {
namespace {

std::string errno_text(int err) { return std::error_code(err, std::generic_category()).message(); }

// Closes on scope exit so that every early throw releases the descriptor.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }
  /// close(2) can report a deferred write error (NFS, quota); the caller must see it.
  int close() {
    int rc = ::close(fd_);
    fd_ = -1;
    return rc;
  }

 private:
  int fd_;
};

// Removes the temporary unless the rename consumed it.
class TempGuard {
 public:
  explicit TempGuard(std::filesystem::path p) : path_(std::move(p)) {}
  TempGuard(const TempGuard&) = delete;
  TempGuard& operator=(const TempGuard&) = delete;
  ~TempGuard() {
    if (armed_) ::unlink(path_.c_str());
  }
  void release() { armed_ = false; }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
  bool armed_ = true;
};

// Keeps the temporary's name under NAME_MAX (255) however long the target's name is.
constexpr std::size_t kMaxStemBytes = 200;

void write_all(int fd, std::span<const std::byte> contents, const std::filesystem::path& target,
               const std::filesystem::path& tmp) {
  const std::byte* p = contents.data();
  std::size_t left = contents.size();
  while (left > 0) {
    // Large single writes can be split by the kernel (and >2 GiB always are on Linux).
    const std::size_t chunk = std::min<std::size_t>(left, std::size_t{1} << 30);
    const ssize_t n = ::write(fd, p, chunk);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      throw DataError(target.string(), "write to " + tmp.string() + " failed after " +
                                           std::to_string(contents.size() - left) + " of " +
                                           std::to_string(contents.size()) +
                                           " bytes: " + errno_text(err));
    }
    p += n;
    left -= static_cast<std::size_t>(n);
  }
}

int fsync_retrying(int fd) {
  int rc;
  do rc = ::fsync(fd);
  while (rc != 0 && errno == EINTR);
  return rc;
}

}  // namespace

bool is_atomic_temporary_name(std::string_view name) {
  // .<stem>.tmp.<digits>.<digits>, the stem non-empty.
  if (name.size() < 2 || name[0] != '.') return false;
  const auto all_digits = [](std::string_view s) {
    return !s.empty() &&
           std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
  };
  const std::size_t last_dot = name.rfind('.');
  if (last_dot == std::string_view::npos || last_dot == 0) return false;
  const std::size_t pid_dot = name.rfind('.', last_dot - 1);
  if (pid_dot == std::string_view::npos || pid_dot < 5) return false;
  if (!all_digits(name.substr(last_dot + 1)) ||
      !all_digits(name.substr(pid_dot + 1, last_dot - pid_dot - 1)))
    return false;
  // ".tmp" ends at pid_dot, and at least one stem byte sits between the leading dot and it.
  return name.substr(pid_dot - 4, 4) == ".tmp" && pid_dot - 4 >= 2;
}

void write_file_atomic(const std::filesystem::path& target, std::span<const std::byte> contents) {
  const std::filesystem::path dir =
      target.has_parent_path() ? target.parent_path() : std::filesystem::path(".");
  const std::string name = target.filename().string();
  if (name.empty() || name == "." || name == "..")
    throw DataError(target.string(), "not a file name to write to");
  const std::string stem = name.substr(0, kMaxStemBytes);
  const std::string prefix = "." + stem + ".tmp." + std::to_string(::getpid()) + ".";

  // O_EXCL makes the name ours; a clash (another thread, or a leftover from a crashed process
  // that had our pid) just moves on to the next counter value. No shared counter is needed.
  int fd = -1;
  std::filesystem::path tmp;
  for (unsigned n = 0; fd < 0; ++n) {
    tmp = dir / (prefix + std::to_string(n));
    fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd >= 0) break;
    const int err = errno;
    if (err == EINTR) continue;
    if (err != EEXIST || n >= 10000)
      throw DataError(target.string(),
                      "cannot create temporary " + tmp.string() + ": " + errno_text(err));
  }
  Fd file(fd);
  TempGuard guard(tmp);

  write_all(file.get(), contents, target, tmp);
  fault::point("atomic.after_temp_write", name);
  // errno is read at once: building the message allocates, and allocation may touch errno.
  if (fsync_retrying(file.get()) != 0) {
    const int err = errno;
    throw DataError(target.string(), "fsync of " + tmp.string() + " failed: " + errno_text(err));
  }
  if (file.close() != 0) {
    const int err = errno;
    throw DataError(target.string(), "close of " + tmp.string() + " failed: " + errno_text(err));
  }
  fault::point("atomic.before_rename", name);
  if (::rename(tmp.c_str(), target.c_str()) != 0) {
    const int err = errno;
    throw DataError(target.string(), "rename from " + tmp.string() + " failed: " + errno_text(err));
  }
  guard.release();
  fault::point("atomic.after_rename", name);

  // The rename is durable only once the directory entry is on disk.
  Fd d(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (d.get() < 0) {
    const int err = errno;
    throw DataError(target.string(), "written, but cannot open directory " + dir.string() +
                                         " to fsync it: " + errno_text(err));
  }
  if (fsync_retrying(d.get()) != 0) {
    const int err = errno;
    // Some filesystems cannot fsync a directory at all; nothing more can be done there.
    if (err != EINVAL && err != ENOTSUP)
      throw DataError(target.string(), "written, but fsync of directory " + dir.string() +
                                           " failed: " + errno_text(err));
  }
}

void write_file_atomic(const std::filesystem::path& target, std::string_view contents) {
  write_file_atomic(target, std::as_bytes(std::span<const char>(contents.data(), contents.size())));
}

std::size_t remove_stale_temporaries(const std::filesystem::path& dir) {
  std::error_code ec;
  std::filesystem::directory_iterator it(dir, ec);
  if (ec) throw DataError(dir.string(), "cannot list directory: " + ec.message());
  std::size_t removed = 0;
  for (; it != std::filesystem::directory_iterator(); it.increment(ec)) {
    if (ec) throw DataError(dir.string(), "cannot list directory: " + ec.message());
    const std::string name = it->path().filename().string();
    if (!is_atomic_temporary_name(name)) continue;
    std::error_code type_ec;
    if (!it->is_regular_file(type_ec) || it->is_symlink(type_ec)) continue;
    if (::unlink(it->path().c_str()) != 0) {
      const int err = errno;
      if (err == ENOENT) continue;  // someone else cleaned it meanwhile
      throw DataError(it->path().string(), "cannot remove stale temporary: " + errno_text(err));
    }
    ++removed;
  }
  if (ec) throw DataError(dir.string(), "cannot list directory: " + ec.message());
  return removed;
}

}  // namespace wdlab::io

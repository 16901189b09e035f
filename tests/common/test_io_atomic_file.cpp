// write_file_atomic: the target ends up with exactly the new bytes or keeps the old ones, and no
// temporary survives either way.
#include <signal.h>
#include <sys/resource.h>

#include <algorithm>
#include <thread>

#include "common/errors.hpp"
#include "common/io/atomic_file.hpp"
#include "tests/common/io_test_util.hpp"

using namespace wdlab;
using namespace wdlab::io;
using wdlab::iotest::message_of;
using wdlab::iotest::read_text;
using wdlab::iotest::TempDir;
using wdlab::iotest::write_text;

namespace {

std::vector<std::string> entries(const std::filesystem::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(dir)) out.push_back(e.path().filename());
  std::sort(out.begin(), out.end());
  return out;
}

// Caps this process's file size, so that write(2) fails with EFBIG part-way (SIGXFSZ ignored);
// it works for root too, unlike permission bits. Restored at scope exit.
class FileSizeLimit {
 public:
  explicit FileSizeLimit(rlim_t bytes) {
    ::getrlimit(RLIMIT_FSIZE, &saved_);
    old_handler_ = ::signal(SIGXFSZ, SIG_IGN);
    rlimit lim = saved_;
    lim.rlim_cur = bytes;
    REQUIRE(::setrlimit(RLIMIT_FSIZE, &lim) == 0);
  }
  ~FileSizeLimit() {
    ::setrlimit(RLIMIT_FSIZE, &saved_);
    ::signal(SIGXFSZ, old_handler_);
  }
  FileSizeLimit(const FileSizeLimit&) = delete;
  FileSizeLimit& operator=(const FileSizeLimit&) = delete;

 private:
  rlimit saved_{};
  sighandler_t old_handler_;
};

}  // namespace

TEST_CASE("atomic write: creates and replaces a file, leaving only the target") {
  TempDir dir;
  const auto target = dir / "metrics.json";
  write_file_atomic(target, std::string_view("first"));
  CHECK(read_text(target) == "first");
  const std::string second(100'000, 'z');
  write_file_atomic(target, std::as_bytes(std::span<const char>(second)));
  CHECK(read_text(target) == second);
  write_file_atomic(target, std::string_view(""));
  CHECK(read_text(target).empty());
  CHECK(entries(dir.path()) == std::vector<std::string>{"metrics.json"});
}

TEST_CASE("atomic write: a relative target lands in the working directory's path") {
  TempDir dir;
  const auto old = std::filesystem::current_path();
  std::filesystem::current_path(dir.path());
  write_file_atomic("DONE", std::string_view("ok\n"));
  std::filesystem::current_path(old);
  CHECK(read_text(dir / "DONE") == "ok\n");
  CHECK(entries(dir.path()) == std::vector<std::string>{"DONE"});
}

TEST_CASE("atomic write: a very long file name still gets a valid temporary") {
  TempDir dir;
  const std::string name(250, 'n');
  write_file_atomic(dir / name, std::string_view("x"));
  CHECK(read_text(dir / name) == "x");
  CHECK(entries(dir.path()) == std::vector<std::string>{name});
}

TEST_CASE("atomic write: parent is a regular file, nothing is created") {
  TempDir dir;
  write_text(dir / "plain", "keep");
  const auto m = message_of<DataError>(
      [&] { write_file_atomic(dir / "plain" / "x.json", std::string_view("new")); });
  CHECK(m.find((dir / "plain" / "x.json").string() + ": cannot create temporary") == 0);
  CHECK(m.find("Not a directory") != std::string::npos);
  CHECK(read_text(dir / "plain") == "keep");
  CHECK(entries(dir.path()) == std::vector<std::string>{"plain"});
}

TEST_CASE("atomic write: failing rename removes the temporary and keeps the target") {
  TempDir dir;
  std::filesystem::create_directory(dir / "checkpoints");
  write_text(dir / "checkpoints" / "inside", "keep");
  // rename(2) of a file over a directory fails with EISDIR, for root as for anyone.
  const auto m =
      message_of<DataError>([&] { write_file_atomic(dir / "checkpoints", std::string_view("x")); });
  CHECK(m.find("rename from") != std::string::npos);
  CHECK(m.find("Is a directory") != std::string::npos);
  CHECK(std::filesystem::is_directory(dir / "checkpoints"));
  CHECK(read_text(dir / "checkpoints" / "inside") == "keep");
  CHECK(entries(dir.path()) == std::vector<std::string>{"checkpoints"});
}

TEST_CASE("atomic write: a write failing part-way keeps the old file and leaves no temporary") {
  TempDir dir;
  const auto target = dir / "model.safetensors";
  write_text(target, "old contents");
  const std::string big(1 << 20, 'q');
  std::string m;
  {
    FileSizeLimit limit(4096);  // the first write is cut short, the next one fails with EFBIG
    m = message_of<DataError>([&] { write_file_atomic(target, std::string_view(big)); });
  }
  CAPTURE(m);
  CHECK(m.find("failed after 4096 of 1048576 bytes") != std::string::npos);
  CHECK(m.find(".model.safetensors.tmp.") != std::string::npos);  // names the temporary too
  CHECK(m.find("File too large") != std::string::npos);
  CHECK(read_text(target) == "old contents");
  CHECK(entries(dir.path()) == std::vector<std::string>{"model.safetensors"});
}

TEST_CASE("atomic write: concurrent writers never interleave or leave temporaries") {
  TempDir dir;
  const auto target = dir / "latest";
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      const std::string body(10'000 + t, static_cast<char>('a' + t));
      for (int i = 0; i < 20; ++i) write_file_atomic(target, std::string_view(body));
    });
  }
  for (auto& th : threads) th.join();
  const std::string got = read_text(target);
  REQUIRE(got.size() >= 10'000);
  const int t = static_cast<int>(got.size()) - 10'000;
  CHECK(got == std::string(10'000 + t, static_cast<char>('a' + t)));
  CHECK(entries(dir.path()) == std::vector<std::string>{"latest"});
}

TEST_CASE("atomic write: temporary-name recognition") {
  CHECK(is_atomic_temporary_name(".x.tmp.1.0"));
  CHECK(is_atomic_temporary_name(".model.safetensors.tmp.123456.42"));
  CHECK(is_atomic_temporary_name("..hidden.tmp.1.2"));
  CHECK_FALSE(is_atomic_temporary_name("x.tmp.1.0"));    // no leading dot
  CHECK_FALSE(is_atomic_temporary_name(".tmp.1.0"));     // no stem
  CHECK_FALSE(is_atomic_temporary_name(".x.tmp.1"));     // no counter
  CHECK_FALSE(is_atomic_temporary_name(".x.tmp.a.0"));   // pid not numeric
  CHECK_FALSE(is_atomic_temporary_name(".x.tmp.1.0x"));  // counter not numeric
  CHECK_FALSE(is_atomic_temporary_name(".x.tmpa.1.0"));
  CHECK_FALSE(is_atomic_temporary_name(".bashrc"));
}

TEST_CASE("atomic write: stale temporaries are removed, everything else stays") {
  TempDir dir;
  for (const char* name :
       {".ckpt.tmp.123.0", ".latest.tmp.99999.7", "keep.tmp.1.1", ".keep", ".keep.tmp.x.1", "DONE"})
    write_text(dir / name, "x");
  std::filesystem::create_directory(dir / ".dir.tmp.1.1");  // not a regular file: kept
  CHECK(remove_stale_temporaries(dir.path()) == 2);
  CHECK(entries(dir.path()) ==
        std::vector<std::string>{".dir.tmp.1.1", ".keep", ".keep.tmp.x.1", "DONE", "keep.tmp.1.1"});
  CHECK(remove_stale_temporaries(dir.path()) == 0);
  CHECK(message_of<DataError>([&] {
          (void)remove_stale_temporaries(dir / "missing");
        }).find("cannot list directory") != std::string::npos);
}

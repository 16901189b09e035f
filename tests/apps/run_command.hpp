#pragma once
// Runs the wdlab binary as a child process and captures exit code, stdout and stderr.
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <unistd.h>

namespace wdlab::test {

struct Run {
  int rc = -1;
  std::string out, err;
};

inline std::string slurp(const std::filesystem::path& p) {
  std::ifstream f(p);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

/// Runs `cmd` with /bin/sh; exit code (128+signal when killed) and both outputs.
inline Run run_sh(const std::string& cmd) {
  const auto dir = std::filesystem::temp_directory_path();
  const std::string tag = std::to_string(::getpid());
  const auto out = dir / ("wdlab_test_out_" + tag), err = dir / ("wdlab_test_err_" + tag);
  const int status = std::system(("( " + cmd + " ) >" + out.string() + " 2>" + err.string()).c_str());
  Run r;
  r.rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = slurp(out);
  r.err = slurp(err);
  std::filesystem::remove(out);
  std::filesystem::remove(err);
  return r;
}

/// `args` is appended to the binary's path as-is (the caller quotes); `env` is "NAME=value ...".
inline Run run_wdlab(const std::string& args, const std::string& env = "") {
  return run_sh((env.empty() ? "" : "env " + env + " ") + std::string(WDLAB_BIN) + " " + args);
}

/// A path under the temporary directory, unique to this process, removed if it exists.
inline std::filesystem::path fresh_dir(const std::string& prefix, const std::string& name) {
  const auto d = std::filesystem::temp_directory_path() / (prefix + "_" + std::to_string(::getpid()) + "_" + name);
  std::filesystem::remove_all(d);
  return d;
}

/// Debian's Fashion-MNIST (the embedded default dataset); tests that need it skip without it.
inline bool have_fashion_mnist() {
  return std::filesystem::exists("/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz");
}

}  // namespace wdlab::test

#include "common/fault.hpp"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <string>

namespace wdlab::fault {

void point(std::string_view name, std::string_view detail) {
  const char* spec_c = std::getenv("WDLAB_FAULT_KILL");
  if (spec_c == nullptr || *spec_c == '\0') return;
  const std::string_view spec(spec_c);
  const std::size_t at = spec.rfind('@');
  const std::string_view where = spec.substr(0, at);
  const std::size_t slash = where.find('/');
  const std::string_view want_name = where.substr(0, slash);
  const std::string_view want_detail = slash == std::string_view::npos ? "" : where.substr(slash + 1);
  if (name != want_name || detail.find(want_detail) == std::string_view::npos) return;
  const long n = at == std::string_view::npos ? 1 : std::atol(std::string(spec.substr(at + 1)).c_str());
  // The one process-wide counter: a test hook that must count hits across every caller.
  static std::atomic<long> hits{0};
  if (++hits == n) ::kill(::getpid(), SIGKILL);
}

bool nan_at(long long step) {
  const char* v = std::getenv("WDLAB_FAULT_NAN_AT");
  return v != nullptr && *v != '\0' && std::atoll(v) == step;
}

bool pause_at(long long step) {
  const char* v = std::getenv("WDLAB_FAULT_PAUSE_AT");
  return v != nullptr && *v != '\0' && std::atoll(v) == step;
}

bool theory_fail(std::string_view id, int depth, int width) {
  const char* v = std::getenv("WDLAB_FAULT_THEORY_FAIL");
  if (v == nullptr || *v == '\0') return false;
  const std::string_view spec(v);
  const std::size_t at = spec.rfind('@');
  if (at == std::string_view::npos || !id.starts_with(spec.substr(0, at))) return false;
  const std::string size(spec.substr(at + 1));
  const std::size_t x = size.find('x');
  if (x == std::string::npos) return false;
  return depth >= std::atoi(size.substr(0, x).c_str()) && width >= std::atoi(size.substr(x + 1).c_str());
}

}  // namespace wdlab::fault

namespace wdlab::fault {

bool crosscheck_error(std::string_view case_name) {
  const char* v = std::getenv("WDLAB_FAULT_CROSSCHECK_ERROR");
  return v != nullptr && *v != '\0' && case_name.find(v) != std::string_view::npos;
}

}  // namespace wdlab::fault

#include "common/optim/schedule.hpp"

#include <cmath>

#include <fmt/format.h>

#include "common/errors.hpp"

namespace wdlab::optim {

std::string to_string(ScheduleKind k) {
  switch (k) {
    case ScheduleKind::constant: return "constant";
    case ScheduleKind::step_epochs: return "step_epochs";
    case ScheduleKind::step_iterations: return "step_iterations";
  }
  return "?";
}

ScheduleKind parse_schedule_kind(const std::string& field, const std::string& s) {
  for (ScheduleKind k : {ScheduleKind::constant, ScheduleKind::step_epochs, ScheduleKind::step_iterations})
    if (to_string(k) == s) return k;
  throw UsageError(field, fmt::format("unknown schedule '{}' (expected constant, step_epochs or "
                                      "step_iterations)", s));
}

void Schedule::validate() const {
  if (!(std::isfinite(lr) && lr >= 0)) throw UsageError("lr", fmt::format("must be finite and >= 0, got {}", lr));
  if (!(std::isfinite(gamma) && gamma > 0 && gamma <= 1))
    throw UsageError("gamma", fmt::format("must be in (0, 1], got {}", gamma));
  if (kind == ScheduleKind::step_epochs && every_epochs < 1)
    throw UsageError("every_epochs", fmt::format("must be >= 1, got {}", every_epochs));
  if (kind == ScheduleKind::step_iterations && every_iterations < 1)
    throw UsageError("every_iterations", fmt::format("must be >= 1, got {}", every_iterations));
  if (warmup_iterations < 0)
    throw UsageError("warmup_iterations", fmt::format("must be >= 0, got {}", warmup_iterations));
}

double lr_at(const Schedule& s, std::int64_t k, std::int64_t iterations_per_epoch) {
  if (k < 0) throw InternalError(fmt::format("lr_at: iteration {} < 0", k));
  if (iterations_per_epoch < 1)
    throw InternalError(fmt::format("lr_at: iterations_per_epoch {} < 1", iterations_per_epoch));
  std::int64_t stage = 0;
  switch (s.kind) {
    case ScheduleKind::constant: break;
    case ScheduleKind::step_epochs: stage = (k / iterations_per_epoch) / s.every_epochs; break;
    case ScheduleKind::step_iterations: stage = k / s.every_iterations; break;
  }
  double lr = s.lr * std::pow(s.gamma, double(stage));
  if (k < s.warmup_iterations) lr *= double(k + 1) / double(s.warmup_iterations);
  return lr;
}

}  // namespace wdlab::optim

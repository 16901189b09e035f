#pragma once
// Learning-rate schedules η_k (MATH.md §10, §12 item 8). The iteration k counts completed
// optimizer steps: k = 0 is the first step, and k / iterations_per_epoch (integer division) is
// the epoch the step belongs to.
//   constant:         η_k = η₀
//   step_epochs:      η_k = η₀ · γ^⌊epoch/every_epochs⌋         (the paper: ×0.1 every 40/60/80 epochs)
//   step_iterations:  η_k = η₀ · γ^⌊k/every_iterations⌋         (the official decay_every_itr)
//   warm-up (any):    η_k ← η_k · (k+1)/W for k < W             (W = warmup_iterations; 0 = off)
#include <cstdint>
#include <string>

namespace wdlab::optim {

enum class ScheduleKind { constant, step_epochs, step_iterations };
std::string to_string(ScheduleKind k);
ScheduleKind parse_schedule_kind(const std::string& field, const std::string& s);

struct Schedule {
  ScheduleKind kind = ScheduleKind::constant;
  double lr = 0.1;                          // η₀
  double gamma = 0.1;                       // γ, decay factor per stage
  int every_epochs = 60;                    // step_epochs
  std::int64_t every_iterations = 16000;    // step_iterations
  std::int64_t warmup_iterations = 0;       // W
  /// Throws UsageError naming the field ("lr", "gamma", "every_epochs", ...).
  void validate() const;
};

/// η_k for step k ≥ 0; iterations_per_epoch ≥ 1 (only step_epochs reads it).
double lr_at(const Schedule& s, std::int64_t iteration, std::int64_t iterations_per_epoch);

}  // namespace wdlab::optim

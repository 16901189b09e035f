#pragma once
// Crash injection for the durability tests (issue "nothing lost"): a named point in the code where
// a test can make the process die by SIGKILL, exactly as a preempted or OOM-killed job dies, so
// that "kill at the worst moment, restart, compare with the uninterrupted run" is deterministic
// instead of a race against a timer.
//
// Armed only by the environment: WDLAB_FAULT_KILL=<point>[/<detail substring>]@<n> kills the
// process at the n-th (1-based) time `point` is reached with a detail containing the substring.
// Points: atomic.after_temp_write, atomic.before_rename, atomic.after_rename (detail: the target
// file name), metrics.between_files (detail: "metrics"), trainer.step (detail: the iteration).
// Unset (always, outside tests), a point costs one getenv.

#include <string_view>

namespace wdlab::fault {

void point(std::string_view name, std::string_view detail);

/// WDLAB_FAULT_NAN_AT=k: whether step k's batch should be poisoned with a NaN (to test the
/// non-finite policy on a transient fault, as a corrupt input or an overflow would cause).
bool nan_at(long long step);

/// WDLAB_FAULT_PAUSE_AT=k: whether the trainer should wait after step k until a signal arrives
/// (SIGTERM from a scheduler's scancel or time limit), so a test can cancel a run mid-epoch at a
/// chosen point instead of racing a timer. The trainer says "paused after step k" on stderr; after
/// 2 minutes without a signal it stops as on SIGTERM (an abandoned test leaves no process behind).
bool pause_at(long long step);

/// WDLAB_FAULT_THEORY_FAIL=<id prefix>@<min depth>x<min width>: whether `wdlab theory` should
/// report the row of check `id` on a network of this depth and width as unexpected (its outcome
/// the opposite of the expected one), so that a test can make a known set of networks fail (here:
/// depth >= min depth and width >= min width) and check what --random's shrinking prints.
/// "lemma1.jx@3x4" fails lemma1.jx on every network with at least 3 hidden layers of width >= 4.
bool theory_fail(std::string_view id, int depth, int width);

/// WDLAB_FAULT_CROSSCHECK_ERROR=<substring>: whether `wdlab crosscheck` should throw a
/// DeviceError inside every case whose name contains the substring, as a cuDNN or cuSOLVER call
/// failing mid-case would, so a test can check that the run reports that case and goes on.
bool crosscheck_error(std::string_view case_name);

}  // namespace wdlab::fault

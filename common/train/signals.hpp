#pragma once
// SIGINT/SIGTERM during training: the first one asks the trainer to finish the current step,
// checkpoint, flush its metrics and exit with 128+signal; a second SIGINT exits at once.
// A signal handler can only talk through a process-wide flag, so this is the one global state of
// wdlab, owned by the RAII guard below.
namespace wdlab::train {

class SignalGuard {
 public:
  SignalGuard();   // installs the handlers
  ~SignalGuard();  // restores the previous ones
  SignalGuard(const SignalGuard&) = delete;
  SignalGuard& operator=(const SignalGuard&) = delete;
  /// The signal received since construction, or 0.
  int pending() const;
};

/// Thrown by the trainer after it saved its state on a signal; main() exits with 128+signal.
struct Interrupted {
  int signal = 0;
};

}  // namespace wdlab::train

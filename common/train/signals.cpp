#include "common/train/signals.hpp"

#include <signal.h>
#include <unistd.h>

#include <atomic>

namespace wdlab::train {

namespace {

std::atomic<int> g_pending{0};
struct sigaction g_old_int, g_old_term;

extern "C" void on_signal(int sig) {
  if (g_pending.load() != 0 && sig == SIGINT) _exit(128 + SIGINT);  // second Ctrl-C: now
  g_pending.store(sig);
}

}  // namespace

SignalGuard::SignalGuard() {
  g_pending.store(0);
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, &g_old_int);
  sigaction(SIGTERM, &sa, &g_old_term);
}

SignalGuard::~SignalGuard() {
  sigaction(SIGINT, &g_old_int, nullptr);
  sigaction(SIGTERM, &g_old_term, nullptr);
}

int SignalGuard::pending() const { return g_pending.load(); }

}  // namespace wdlab::train

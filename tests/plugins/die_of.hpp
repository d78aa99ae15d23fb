// The fixtures' way to crash: die of a signal even if the process installed
// a handler for it or blocked it, as a plugin bug would.
#pragma once

#include <signal.h>
#include <unistd.h>

namespace spoold::fixtures {

[[noreturn]] inline void die_of(int sig) {
  ::signal(sig, SIG_DFL);
  sigset_t set;
  ::sigemptyset(&set);
  ::sigaddset(&set, sig);
  ::sigprocmask(SIG_UNBLOCK, &set, nullptr);
  ::raise(sig);
  ::_exit(128 + sig);
}

}  // namespace spoold::fixtures

// The one place that knows signal numbers. The master's handlers only count
// the signal and write a byte to a self-pipe (Postfix master_sigchld); the
// loop reads the pipe and takes the counts. A forked child resets all of it
// first, so nothing of the master's runs there.
#pragma once

#include "posix.hpp"
#include "result.hpp"

namespace spoold {

// What arrived since the last take().
struct signal_events {
  bool child_exited = false;  // SIGCHLD
  unsigned stop = 0;          // SIGTERM/SIGINT: 1 drains, a second forces
  bool reload = false;        // SIGHUP
  bool status = false;        // SIGUSR1: log a status line per queue
  bool ignored_user2 = false; // SIGUSR2: no meaning for spoold, logged and ignored
  bool ignored_alarm = false; // SIGALRM: likewise
};

class signal_pipe {
 public:
  // Installs the master's handlers (SIGPIPE ignored: a write to a gone peer
  // is an EPIPE to handle where it happens).
  result<void> install();
  // Readable when a signal came; drain() before take().
  int fd() const { return read_.get(); }
  void drain();
  signal_events take();

 private:
  unique_fd read_;
  unique_fd write_;
};

// In a child after fork(): an empty signal mask and default dispositions,
// so that the master's handlers (and its self-pipe) are never run there.
void reset_signals_after_fork();

}  // namespace spoold

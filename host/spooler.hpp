// One spooler process: loads the queue's plugin chain after fork, then takes
// the tasks the master names, one at a time, and acts on each status.
#pragma once

#include <sys/types.h>

#include "config.hpp"
#include "protocol.hpp"
#include "spooler_board.hpp"

namespace spoold {

// Exit codes of a spooler, which the master logs by name.
enum spooler_exit : int {
  k_spooler_exit_ok = 0,
  k_spooler_exit_queue_dir = 3,
  k_spooler_exit_plugin = 4,
  k_spooler_exit_socket = 5,
  k_spooler_exit_uncaught = 6,  // an exception reached run_spooler (our bug), logged
  k_spooler_exit_nice = 7,      // the queue's nice could not be set, logged
  k_spooler_exit_sandbox = 8,   // the queue's sandbox could not be applied, logged
};

// Runs in the child after fork() and never returns. socket_fd is the
// spooler's end of its socketpair with the master; board (may be nullptr)
// is the host's shared board (spooler_board.hpp).
[[noreturn]] void run_spooler(const host_config& host, const queue_config& queue, int socket_fd, spooler_slot* slot,
                              spooler_board* board, pid_t master_pid);

}  // namespace spoold

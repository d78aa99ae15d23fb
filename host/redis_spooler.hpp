// The loop of a spooler of a Redis queue: it takes its own entries from the
// queue's streams (the master only supervises it), runs the plugin chain
// and records each outcome in Redis, keeping outcomes while the server is
// unreachable and applying them when it is back.
#pragma once

#include <sys/types.h>

#include "config.hpp"
#include "plugin_chain.hpp"
#include "protocol.hpp"

namespace spoold {

// Runs after the chain's init(), before the sandbox; returns the spooler's
// exit code. Sends the master the ready report itself.
int run_redis_spooler(const host_config& host, const queue_config& queue, int socket_fd, spooler_slot* slot,
                      pid_t master_pid, plugin_chain& chain);

}  // namespace spoold

// The master: reacts to events and does nothing slow in between. It forks
// the spooler processes of every queue (spooler_pool), names them due tasks
// (dispatcher), reloads on HUP with the plugin check in a child (reload),
// logs a status line per queue on USR1, and drains on TERM/INT. It never
// runs plugin code and never rewrites a task file.
#pragma once

#include "config.hpp"
#include "instance_lock.hpp"

namespace spoold {

// Runs the host until TERM/INT; returns the process exit code. The lock
// keeps a second host off the same config for as long as this one runs.
int run_master(config c, instance_lock lock);

}  // namespace spoold

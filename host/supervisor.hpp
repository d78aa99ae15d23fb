// The master: forks the spooler processes of every queue, hands them due
// tasks, reaps and respawns them (throttled), kills the ones past their
// timeout, counts a try for a task whose spooler died in it, and handles
// TERM/INT (drain, then exit) and HUP (re-read, replace spoolers). It never
// runs plugin code.
#pragma once

#include "config.hpp"

namespace spoold {

// Runs the host until TERM/INT; returns the process exit code.
int run_supervisor(config c);

}  // namespace spoold

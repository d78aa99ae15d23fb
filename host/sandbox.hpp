// The sandbox of a queue's spoolers ([queue.sandbox], SPEC §7 and README
// "Security"): what a spooler gives up after its plugins' init() and before
// its first task. In this order, in the spooler:
//   1. the Landlock rules are built (paths opened while still allowed),
//   2. the user and group are switched (only a root host may),
//   3. no_new_privs, so that no exec'd setuid binary gains anything,
//   4. the Landlock ruleset is enforced on this process and its children,
//   5. the resource limits (memory, open files, no core dumps).
// A CPU limit is set anew before each task (the kernel's RLIMIT_CPU counts
// the process's whole life).
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "config.hpp"
#include "result.hpp"

namespace spoold {

struct sandbox_review {
  std::vector<std::string> problems;  // keep the host from starting (exit 2)
  std::vector<std::string> warnings;  // logged once per queue
};

// What keeps this host from applying the queues' sandboxes, checked by the
// master at --check, start and reload: a user or group while not root, a
// read or write path that does not exist, a kernel without Landlock (a
// problem with require = true, a warning without).
sandbox_review review_sandboxes(const config& c);

// In a spooler, after init() and before the first task. The error says which
// step failed; the spooler then exits and nothing of the queue runs outside
// its sandbox.
result<void> apply_sandbox(const queue_config& queue, const host_config& host, pid_t master_pid);

// Before each task: a CPU budget of sandbox.cpu (to the next whole second)
// from now; a no-op without one. The kernel sends SIGXCPU at the budget,
// which ends the spooler unless a plugin catches it, and SIGKILL at the hard
// limit if the host was started with one (LimitCPU=).
void limit_task_cpu(const sandbox_config& sandbox);

}  // namespace spoold

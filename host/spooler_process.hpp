// What a spooler process sets up around its plugins: signals and the
// parent-death signal after fork, its niceness, the log sink the plugins
// write to, and the reading of its own resident set for max_rss.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>

#include "config.hpp"
#include "posix.hpp"
#include "protocol.hpp"

namespace spoold {

// After fork, before anything else: the master's signal handlers replaced,
// SIGTERM only sets a flag (termination_requested), SIGKILL when the master
// dies. Exits at once when the master died before the parent-death signal
// was set.
void reset_spooler_process(pid_t master_pid);

// Called again after a change of user (the kernel clears the parent-death
// signal on a credentials change).
void set_parent_death_signal(pid_t master_pid);

// True once a SIGTERM reached this spooler.
bool termination_requested() noexcept;
// A SIGTERM, or the master's stop in the slot: finish the task in hand,
// take no other.
inline bool told_to_stop(const spooler_slot& slot) noexcept {
  return termination_requested() || slot.stop.load() != 0;
}

// What plugins that write tasks into their own queue (the python plugin's
// uwsgi.spool()) read of it, since the plugin API does not carry it:
// SPOOLD_QUEUE_DIR for a directory; for a Redis queue SPOOLD_QUEUE_REDIS
// ("stream at server", for messages), SPOOLD_QUEUE_REDIS_URL (the url as
// written, password included) and SPOOLD_QUEUE_REDIS_STREAM. Set before the
// chain loads, in a spooler and in the --check child alike.
void export_queue_to_plugins(const queue_config& queue);

// Applies the queue's nice; false (logged, with what to change) when the
// kernel refuses it.
bool apply_queue_nice(const queue_config& queue);

// After the plugin chain's init(): the queue's sandbox, then the ready
// report (seq 0) the master waits for before it names a task. 0, or the
// spooler's exit code, with the reason logged.
int enter_sandbox_and_report_ready(const queue_config& queue, const host_config& host, pid_t master_pid,
                                   int socket_fd);

// The plugins' logger: each plugin of a chain gets a context naming it.
struct plugin_log_context {
  std::string plugin;
  std::string queue;
};
void plugin_log(void* context, std::int32_t level, const char* message, std::size_t size);

// This process's resident set, read from /proc/self/statm through a file
// opened once: a sandboxed spooler may no longer open /proc.
class resident_set_reader {
 public:
  resident_set_reader();
  // Bytes; nullopt when the file could not be opened or read.
  std::optional<std::uint64_t> bytes() const;
  // After a task: true when the resident set is past max_rss, logged (the
  // spooler then exits and the master starts a fresh one). task names it in
  // the line ("" for none). A file that cannot be read is logged once and
  // never recycles.
  bool past_max_rss(const queue_config& queue, const std::string& task);

 private:
  unique_fd statm_;
  bool unreadable_logged_ = false;
};

std::string mib_text(std::uint64_t bytes);

}  // namespace spoold

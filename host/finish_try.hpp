// The one routine that ends a try that did not succeed, for a plugin's Retry
// or Fail and for the try a spooler that died inside a task owes (SPEC §4).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "duration.hpp"
#include "protocol.hpp"
#include "queue_dir.hpp"

namespace spoold {

struct try_end {
  outcome result = outcome::io_error;  // rescheduled, failed, or io_error (the file is as it was)
  std::int64_t due_ns = 0;             // when rescheduled: the next try's time
  duration delay{0};                   // when rescheduled: the backoff chosen
  std::string error;                   // the text recorded as spoold.error, or the I/O error
};

// What is known of the try being counted, for its entry in the task's
// history (spool_file.hpp, try_record). The try a dead spooler owes is
// counted by another spooler: its start and pid are not known here.
struct try_facts {
  std::string status;                      // retry, fail, crash, timeout; empty: retry or fail by fail_now
  std::optional<std::int64_t> started_ns;  // wall clock
  std::optional<std::int64_t> pid;
  std::optional<std::int64_t> duration_ns;
};

// Counts the try in the task's file: moved to failed/ at once when fail_now
// or when this was the last of max_attempts (the reason then says so),
// otherwise rewritten with the attempt count and the reason, due after the
// backoff with jitter; either way the try is added to the task's history.
// The task stays locked by the caller throughout.
try_end finish_try(queue_dir& dir, claimed_task& task, std::string reason, bool fail_now, std::int64_t now,
                   const try_facts& facts = {});

}  // namespace spoold

// The one routine that ends a try that did not succeed, for a plugin's Retry
// or Fail and for the try a spooler that died inside a task owes (SPEC §4).
#pragma once

#include <cstdint>
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

// Counts the try in the task's file: moved to failed/ at once when fail_now
// or when this was the last of max_attempts (the reason then says so),
// otherwise rewritten with the attempt count and the reason, due after the
// backoff with jitter. The task stays locked by the caller throughout.
try_end finish_try(queue_dir& dir, claimed_task& task, std::string reason, bool fail_now, std::int64_t now);

}  // namespace spoold

#include "finish_try.hpp"

#include <chrono>

#include "backoff.hpp"

namespace spoold {

try_end finish_try(queue_dir& dir, claimed_task& task, std::string reason, bool fail_now, std::int64_t now) {
  const queue_config& q = dir.config();
  const unsigned tries = task.attempt + 1;
  try_end end;
  if (fail_now || tries >= q.max_attempts) {
    if (!fail_now) {
      reason += " (gave up after " + std::to_string(tries) + " of max_attempts " + std::to_string(q.max_attempts) + ")";
    }
    if (auto moved = dir.fail(task, tries, reason); !moved) {
      end.error = "cannot move it to failed/: " + moved.err().message + "; it stays pending";
      return end;
    }
    end.result = outcome::failed;
    end.error = std::move(reason);
    return end;
  }
  end.delay = retry_delay(tries, q.backoff, q.backoff_max, random_jitter());
  end.due_ns = now + std::chrono::duration_cast<std::chrono::nanoseconds>(end.delay).count();
  if (auto re = dir.reschedule(task, tries, reason, end.due_ns); !re) {
    end.error = "cannot reschedule it: " + re.err().message + "; it stays as it was";
    return end;
  }
  end.result = outcome::rescheduled;
  end.error = std::move(reason);
  return end;
}

}  // namespace spoold

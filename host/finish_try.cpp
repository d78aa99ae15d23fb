#include "finish_try.hpp"

#include <chrono>
#include <optional>
#include <vector>

#include "backoff.hpp"

namespace spoold {

namespace {

std::optional<std::int64_t> to_ms(std::optional<std::int64_t> ns) {
  if (!ns) return std::nullopt;
  return *ns / 1'000'000;
}

// Puts the try into the args queue_dir rewrites the file from, for the
// length of one rewrite: the claimed task's own view is left as it was.
class history_added {
 public:
  history_added(claimed_task& task, const try_record& record)
      : task_(task), original_(task.view.args) {
    task_.view.args = args_with_try(task_.view, record, held_);
  }
  ~history_added() { task_.view.args = std::move(original_); }
  history_added(const history_added&) = delete;
  history_added& operator=(const history_added&) = delete;

 private:
  claimed_task& task_;
  std::vector<spool_arg> original_;
  owned_arg held_;
};

}  // namespace

try_end finish_try(queue_dir& dir, claimed_task& task, std::string reason, bool fail_now, std::int64_t now,
                   const try_facts& facts) {
  const queue_config& q = dir.config();
  const unsigned tries = task.attempt + 1;
  try_end end;
  const bool give_up = fail_now || tries >= q.max_attempts;
  if (give_up && !fail_now) {
    reason += " (gave up after " + std::to_string(tries) + " of max_attempts " + std::to_string(q.max_attempts) + ")";
  }
  try_record record;
  record.attempt = tries;
  record.started_ms = to_ms(facts.started_ns);
  record.pid = facts.pid;
  record.duration_ms = to_ms(facts.duration_ns);
  record.counted_ms = now / 1'000'000;
  record.status = !facts.status.empty() ? facts.status : fail_now ? "fail" : "retry";
  record.error = reason;
  const history_added history(task, record);
  if (give_up) {
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

#include "dir_task_source.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include "finish_try.hpp"
#include "logging.hpp"
#include "posix.hpp"
#include "spooler.hpp"
#include "spooler_process.hpp"

namespace spoold {

dir_task_source::dir_task_source(const queue_config& queue, const plugin_chain& chain, std::unique_ptr<queue_dir> dir,
                                 int socket_fd, spooler_slot* slot)
    : queue_(queue), chain_(chain), dir_(std::move(dir)), socket_(socket_fd), slot_(slot), buf_(k_max_message) {}

bool dir_task_source::take(source_task& t) {
  task_.reset();
  while (!told_to_stop(*slot_)) {
    if (todo_.empty()) {
      if (!receive()) return false;
      continue;
    }
    assignment a = std::move(todo_.front());
    todo_.pop_front();
    // Taken back by the master while we were in a long task: another
    // spooler has it. No report: the master no longer expects one.
    if (a.seq > slot_->revoked_after.load() && a.seq <= slot_->revoked_to.load()) continue;
    if (claim(a, t)) return true;
  }
  return false;
}

// A batch is done: tell the master what became of it, so that it names the
// next batch while we run the one already waiting in the socket (double
// buffering: one wake-up of the master per batch); sleep only when none is
// waiting. False when the spooler is to stop.
bool dir_task_source::receive() {
  if (!flush()) return false;
  ssize_t n = ::recv(socket_, buf_.data(), buf_.size(), MSG_DONTWAIT);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) n = ::recv(socket_, buf_.data(), buf_.size(), 0);
  if (n < 0) {
    if (errno == EINTR) return true;  // a SIGTERM: take() looks at it
    spdlog::error("spooler for queue {}: recv from the master: {}", queue_.name, errno_text(errno));
    exit_code_ = k_spooler_exit_socket;
    return false;
  }
  if (n == 0) return false;  // the master closed our socket: stop
  if (!decode_batch(buf_.data(), static_cast<std::size_t>(n), todo_)) {
    spdlog::error("spooler for queue {}: a malformed message from the master", queue_.name);
    exit_code_ = k_spooler_exit_socket;
    return false;
  }
  return true;
}

// Sends the waiting outcomes in one message; false when the master is gone.
bool dir_task_source::flush() {
  if (done_.empty()) return true;
  // EINTR (a SIGTERM) is retried in the seam: the master is still there.
  auto sent = send_message(socket_, done_.data(), done_.size() * sizeof(report), 0, "the master");
  done_.clear();
  if (!sent && sent.err().code != EPIPE && sent.err().code != ECONNRESET) {
    spdlog::error("spooler for queue {}: {}", queue_.name, sent.err().message);
  }
  return sent.ok();
}

bool dir_task_source::claim(const assignment& a, source_task& t) {
  report r;
  r.seq = a.seq;
  auto ref = task_ref::from_relative(a.task);
  if (!ref) {
    spdlog::warn("queue {}: refusing task name {}: not a task file name", queue_.name, log_quote(a.task));
    r.result = outcome::rejected;
    done_.push_back(r);
    return false;
  }
  const bool owed = !a.owed_try.empty();
  auto c = dir_->claim(*ref, now_ns(), !owed);
  r.identity = c.identity;
  r.due_ns = c.due_ns;
  switch (c.status) {
    case claim_status::claimed: break;
    case claim_status::busy:
      if (owed) {
        log_event(spdlog::level::info, log_fields::about_task(ref->name, queue_.name),
                  "the try its crashed spooler owes waits: another process holds the file's lock");
      }
      r.result = outcome::busy;
      break;
    case claim_status::gone: r.result = outcome::gone; break;
    case claim_status::not_due: r.result = outcome::not_due; break;
    case claim_status::incomplete: r.result = outcome::incomplete; break;
    case claim_status::unparsable:
      if (!owed) {
        log_event(spdlog::level::warn,
                  log_fields::about_task(ref->name, queue_.name).with_status("unparsable").with_error(c.reason),
                  "moved to failed/");
      }
      r.result = outcome::unparsable;
      break;
    case claim_status::rejected:
      if (!owed) spdlog::warn("queue {}: skipping {}/{}: {}", queue_.name, queue_.dir, ref->relative(), c.reason);
      r.result = outcome::rejected;
      break;
    case claim_status::io_error:
      if (owed) {
        log_event(spdlog::level::warn, log_fields::about_task(ref->name, queue_.name).with_error(c.reason),
                  "the try its crashed spooler owes waits");
      } else {
        spdlog::warn("queue {}: cannot take {}: {}", queue_.name, ref->relative(), c.reason);
      }
      r.result = outcome::io_error;
      break;
  }
  if (c.status != claim_status::claimed) {
    done_.push_back(r);
    return false;
  }
  done_.push_back(r);  // completed by record() or record_owed_try()
  task_ = std::move(c.task);
  t.seq = a.seq;
  t.id = task_->ref.name;
  t.attempt = task_->attempt;
  t.body = task_->view.body;
  t.owed_try = a.owed_try;
  t.args.clear();
  for (const auto& kv : task_->view.args) {
    t.args.push_back({{kv.key.data(), kv.key.size()}, {kv.value.data(), kv.value.size()}});
  }
  return true;
}

void dir_task_source::record(const source_task& /*t*/, const chain_verdict& v) {
  claimed_task& task = *task_;
  report& r = done_.back();
  r.handle_ns = v.took_ns;
  r.plugin_status = v.status;
  log_fields line = chain_.line(task.ref.name, v, task.attempt);
  if (v.is(Status::Ignore)) {
    if (auto listed = dir_->record_ignored(task); !listed) {
      log_event(spdlog::level::warn, log_fields::about_task(task.ref.name, queue_.name).with_error(listed.err().message),
                "cannot list it as ignored for spoolctl");
    }
    log_event(spdlog::level::info, line, "left in place, not offered again until it changes");
    r.result = outcome::ignored;
    return;
  }
  if (v.is(Status::Ok)) {
    if (auto removed = dir_->remove(task); !removed) {
      // Still there: it runs again (at least once), never forgotten.
      line.error = removed.err().message;
      log_event(spdlog::level::warn, line, "it stays pending");
      r.result = removed.err().code == ENOENT ? outcome::gone : outcome::io_error;
      return;
    }
    log_event(spdlog::level::info, line, "");
    r.result = outcome::done;
    return;
  }
  const bool by_fail = v.is(Status::Fail);
  // Only here, off the Ok path: what the task's history keeps of this try.
  const std::int64_t now = now_ns();
  try_facts facts;
  facts.status = by_fail ? "fail" : "retry";
  facts.started_ns = now - v.took_ns;
  facts.pid = ::getpid();
  facts.duration_ns = v.took_ns;
  end_try(v.error, by_fail, now, facts, line, spdlog::level::info, "");
}

// Counts a try that did not succeed (finish_try), completes the report and
// logs the end: moved to failed/, the next try's delay (at `rescheduled`
// level), or the I/O error that left the file as it was.
void dir_task_source::end_try(const std::string& reason, bool fail_now, std::int64_t now, const try_facts& facts,
                              log_fields line, spdlog::level::level_enum rescheduled, std::string_view io_note) {
  claimed_task& task = *task_;
  report& r = done_.back();
  const try_end end = finish_try(*dir_, task, reason, fail_now, now, facts);
  r.result = end.result;
  r.due_ns = end.due_ns;
  line.error = end.error;
  if (end.result == outcome::io_error) {
    log_event(spdlog::level::err, log_fields::about_task(task.ref.name, queue_.name).with_error(end.error), io_note);
  } else if (end.result == outcome::failed) {
    log_event(spdlog::level::warn, line, "moved to failed/");
  } else {
    const std::string delay = format_duration(end.delay);  // line only views it
    line.next_try_in = delay;
    log_event(rescheduled, line, "");
  }
}

// A spooler died inside this task: its try is counted before anyone runs it
// again. A busy or unreadable file kept the debt in the master's index for
// the next taker (claim() reported it).
void dir_task_source::record_owed_try(const source_task& t) {
  claimed_task& task = *task_;
  // Only under the lock: a temp of this name may be another host's rewrite
  // in progress, which it makes while holding the lock.
  dir_->remove_temp_of(task.ref);
  // The master's reason says which: "timed out after 30s" or "spooler
  // killed by signal 9 ...". The dead spooler's start and pid are not known
  // here; the history records the reason and when it was counted.
  try_facts facts;
  facts.status = t.owed_try.rfind("timed out", 0) == 0 ? "timeout" : "crash";
  end_try(t.owed_try, false, now_ns(), facts,
          log_fields::about_task(task.ref.name, queue_.name).with_status("crash").with_attempt(task.attempt),
          spdlog::level::warn, "the try its crashed spooler owes is not counted yet");
}

// Tasks named but not taken go back to the master when we exit; the
// outcomes of the ones taken must reach it first.
int dir_task_source::close() {
  task_.reset();
  flush();
  return exit_code_;
}

}  // namespace spoold

#include "spooler.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <deque>
#include <memory>
#include <vector>

#include "finish_try.hpp"
#include "logging.hpp"
#include "plugin_chain.hpp"
#include "queue_dir.hpp"
#include "redis_spooler.hpp"
#include "sandbox.hpp"
#include "spooler_process.hpp"

namespace spoold {

namespace {

class spooler {
 public:
  spooler(const host_config& host, const queue_config& queue, int socket_fd, spooler_slot* slot, pid_t master_pid)
      : host_(host), queue_(queue), socket_(socket_fd), slot_(slot), master_pid_(master_pid) {}

  int run() {
    // Before the plugins load: their init() runs at the queue's niceness too.
    if (!apply_queue_nice(queue_)) return k_spooler_exit_nice;
    if (!host_.base_dir.empty() && ::chdir(host_.base_dir.c_str()) != 0) {
      spdlog::error("spooler for queue {}: {}", queue_.name, io_error("chdir " + host_.base_dir, errno).message);
      return k_spooler_exit_queue_dir;
    }
    export_queue_to_plugins(queue_);
    if (queue_.redis) {
      if (int code = chain_.load(host_, queue_, slot_); code != 0) return code;
      return run_redis_spooler(host_, queue_, socket_, slot_, master_pid_, chain_);
    }
    auto dir = queue_dir::open(queue_);
    if (!dir) {
      spdlog::error("spooler for queue {}: {}", queue_.name, dir.err().message);
      return k_spooler_exit_queue_dir;
    }
    dir_ = std::make_unique<queue_dir>(std::move(*dir));
    if (int code = chain_.load(host_, queue_, slot_); code != 0) return code;
    // Ready: the master names tasks only to spoolers whose init() returned.
    if (int code = enter_sandbox_and_report_ready(queue_, host_, master_pid_, socket_); code != 0) return code;
    spdlog::debug("spooler for queue {} ready with {}", queue_.name, chain_.text());
    std::vector<char> buf(k_max_message);
    std::deque<assignment> todo;
    std::vector<report> done;
    unsigned handled = 0;
    int code = k_spooler_exit_ok;
    while (!termination_requested() && slot_->stop.load() == 0) {
      if (todo.empty()) {
        // A batch is done: tell the master what became of it, so that it
        // names the next batch while we run the one already waiting in the
        // socket (double buffering: one wake-up of the master per batch);
        // sleep only when none is waiting.
        if (!flush(done)) break;
        ssize_t n = ::recv(socket_, buf.data(), buf.size(), MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) n = ::recv(socket_, buf.data(), buf.size(), 0);
        if (n < 0) {
          if (errno == EINTR) continue;
          spdlog::error("spooler for queue {}: recv from the master: {}", queue_.name, errno_text(errno));
          code = k_spooler_exit_socket;
          break;
        }
        if (n == 0) break;  // the master closed our socket: stop
        if (!decode_batch(buf.data(), static_cast<std::size_t>(n), todo)) {
          spdlog::error("spooler for queue {}: a malformed message from the master", queue_.name);
          code = k_spooler_exit_socket;
          break;
        }
        continue;
      }
      if (termination_requested() || slot_->stop.load() != 0) break;
      assignment a = std::move(todo.front());
      todo.pop_front();
      // Taken back by the master while we were in a long task: another
      // spooler has it. No report: the master no longer expects one.
      if (a.seq > slot_->revoked_after.load() && a.seq <= slot_->revoked_to.load()) continue;
      bool ran_plugin = false;
      done.push_back(take(a, ran_plugin));
      if (ran_plugin && queue_.max_tasks != 0 && ++handled >= queue_.max_tasks) {
        spdlog::info("spooler for queue {} handled {} tasks (max_tasks): recycling", queue_.name, handled);
        break;
      }
      if (ran_plugin && queue_.max_rss != 0 && rss_.past_max_rss(queue_, a.task)) break;
    }
    // Tasks named but not taken go back to the master when we exit; the
    // outcomes of the ones taken must reach it first.
    flush(done);
    return code;
  }

 private:
  // Sends the waiting outcomes in one message; false when the master is gone.
  bool flush(std::vector<report>& done) {
    if (done.empty()) return true;
    // EINTR (a SIGTERM) is retried in the seam: the master is still there.
    auto sent = send_message(socket_, done.data(), done.size() * sizeof(report), 0, "the master");
    done.clear();
    if (!sent && sent.err().code != EPIPE && sent.err().code != ECONNRESET) {
      spdlog::error("spooler for queue {}: {}", queue_.name, sent.err().message);
    }
    return sent.ok();
  }

  report take(const assignment& a, bool& ran_plugin) {
    report r;
    r.seq = a.seq;
    auto ref = task_ref::from_relative(a.task);
    if (!ref) {
      spdlog::warn("queue {}: refusing task name {}: not a task file name", queue_.name, log_quote(a.task));
      r.result = outcome::rejected;
      return r;
    }
    if (!a.owed_try.empty()) return pay_owed_try(*ref, a.owed_try, r);
    auto c = dir_->claim(*ref, now_ns());
    r.identity = c.identity;
    r.due_ns = c.due_ns;
    switch (c.status) {
      case claim_status::claimed: break;
      case claim_status::busy: r.result = outcome::busy; return r;
      case claim_status::gone: r.result = outcome::gone; return r;
      case claim_status::not_due: r.result = outcome::not_due; return r;
      case claim_status::incomplete: r.result = outcome::incomplete; return r;
      case claim_status::unparsable:
        log_event(spdlog::level::warn, log_fields::about_task(ref->name, queue_.name).with_status("unparsable").with_error(c.reason),
                  "moved to failed/");
        r.result = outcome::unparsable;
        return r;
      case claim_status::rejected:
        spdlog::warn("queue {}: skipping {}/{}: {}", queue_.name, queue_.dir, ref->relative(), c.reason);
        r.result = outcome::rejected;
        return r;
      case claim_status::io_error:
        spdlog::warn("queue {}: cannot take {}: {}", queue_.name, ref->relative(), c.reason);
        r.result = outcome::io_error;
        return r;
    }
    ran_plugin = true;
    claimed_task& task = *c.task;
    limit_task_cpu(queue_.sandbox);
    const std::int64_t started = monotonic_ns();
    slot_->started_ns.store(started);
    slot_->current_seq.store(a.seq);
    r.result = run_chain(task, started, r.due_ns, r.plugin_status);
    r.handle_ns = monotonic_ns() - started;
    slot_->current_seq.store(0);
    return r;
  }

  // A spooler died inside this task: count that try before anyone runs it
  // again. A busy or unreadable file keeps the debt in the master's index
  // for the next taker.
  report pay_owed_try(const task_ref& ref, const std::string& why, report& r) {
    const std::int64_t now = now_ns();
    auto c = dir_->claim(ref, now, false);
    r.identity = c.identity;
    r.due_ns = c.due_ns;
    switch (c.status) {
      case claim_status::claimed: break;
      case claim_status::busy:
        log_event(spdlog::level::info, log_fields::about_task(ref.name, queue_.name),
                  "the try its crashed spooler owes waits: another process holds the file's lock");
        r.result = outcome::busy;
        return r;
      case claim_status::gone: r.result = outcome::gone; return r;
      case claim_status::unparsable: r.result = outcome::unparsable; return r;
      case claim_status::rejected: r.result = outcome::rejected; return r;
      default:
        log_event(spdlog::level::warn, log_fields::about_task(ref.name, queue_.name).with_error(c.reason),
                  "the try its crashed spooler owes waits");
        r.result = outcome::io_error;
        return r;
    }
    claimed_task& task = *c.task;
    // Only under the lock: a temp of this name may be another host's
    // rewrite in progress, which it makes while holding the lock.
    dir_->remove_temp_of(ref);
    // The master's reason says which: "timed out after 30s" or "spooler
    // killed by signal 9 ...". The dead spooler's start and pid are not
    // known here; the history records the reason and when it was counted.
    try_facts facts;
    facts.status = why.rfind("timed out", 0) == 0 ? "timeout" : "crash";
    try_end end = finish_try(*dir_, task, why, false, now, facts);
    r.result = end.result;
    r.due_ns = end.due_ns;
    if (end.result == outcome::io_error) {
      log_event(spdlog::level::err, log_fields::about_task(ref.name, queue_.name).with_error(end.error),
                "the try its crashed spooler owes is not counted yet");
    } else if (end.result == outcome::failed) {
      log_event(spdlog::level::warn,
                log_fields::about_task(ref.name, queue_.name).with_status("crash").with_attempt(task.attempt).with_error(
                    end.error),
                "moved to failed/");
    } else {
      const std::string delay = format_duration(end.delay);
      log_event(spdlog::level::warn,
                log_fields::about_task(ref.name, queue_.name)
                    .with_status("crash")
                    .with_attempt(task.attempt)
                    .with_next_try_in(delay)
                    .with_error(end.error),
                "");
    }
    return r;
  }

  outcome run_chain(claimed_task& task, std::int64_t started, std::int64_t& due_ns, std::int32_t& decided) {
    std::vector<spoold_arg>& args = args_;
    args.clear();
    for (const auto& kv : task.view.args) {
      args.push_back({{kv.key.data(), kv.key.size()}, {kv.value.data(), kv.value.size()}});
    }
    chain_verdict verdict = chain_.run(task.attempt, task.ref.name, args, task.view.body);
    const std::int32_t status = verdict.status;
    decided = status;
    const std::int64_t took_ns = monotonic_ns() - started;
    verdict.took_ns = took_ns;
    log_fields line = chain_.line(task.ref.name, verdict, task.attempt);
    if (status == static_cast<std::int32_t>(Status::Ignore)) {
      if (auto listed = dir_->record_ignored(task); !listed) {
        log_event(spdlog::level::warn, log_fields::about_task(task.ref.name, queue_.name).with_error(listed.err().message),
                  "cannot list it as ignored for spoolctl");
      }
      log_event(spdlog::level::info, line, "left in place, not offered again until it changes");
      return outcome::ignored;
    }
    if (status == static_cast<std::int32_t>(Status::Ok)) {
      if (auto removed = dir_->remove(task); !removed) {
        // Still there: it runs again (at least once), never forgotten.
        line.error = removed.err().message;
        log_event(spdlog::level::warn, line, "it stays pending");
        return removed.err().code == ENOENT ? outcome::gone : outcome::io_error;
      }
      log_event(spdlog::level::info, line, "");
      return outcome::done;
    }
    const bool by_fail = status == static_cast<std::int32_t>(Status::Fail);
    // Only here, off the Ok path: what the task's history keeps of this try.
    const std::int64_t now = now_ns();
    try_facts facts;
    facts.status = by_fail ? "fail" : "retry";
    facts.started_ns = now - took_ns;
    facts.pid = ::getpid();
    facts.duration_ns = took_ns;
    try_end end = finish_try(*dir_, task, std::move(verdict.error), by_fail, now, facts);
    due_ns = end.due_ns;
    line.error = end.error;
    if (end.result == outcome::io_error) {
      log_event(spdlog::level::err, log_fields::about_task(task.ref.name, queue_.name).with_error(end.error), "");
    } else if (end.result == outcome::failed) {
      log_event(spdlog::level::warn, line, "moved to failed/");
    } else {
      const std::string delay = format_duration(end.delay);
      line.next_try_in = delay;
      log_event(spdlog::level::info, line, "");
    }
    return end.result;
  }

  const host_config& host_;
  const queue_config& queue_;
  int socket_;
  spooler_slot* slot_;
  pid_t master_pid_;
  std::unique_ptr<queue_dir> dir_;
  plugin_chain chain_;
  std::vector<spoold_arg> args_;       // reused for every task
  resident_set_reader rss_;  // opened before a sandbox hides /proc
};

}  // namespace

void run_spooler(const host_config& host, const queue_config& queue, int socket_fd, spooler_slot* slot,
                 pid_t master_pid) {
  // Nothing may unwind out of here: above this frame is the master's loop,
  // forked, which would carry on in this process as a second master.
  int code = k_spooler_exit_ok;
  try {
    reset_spooler_process(master_pid);
    setup_logging(host.log_level, host.log_format, "spooler");
    set_log_queue(queue.name);
    // Never destroyed: that would dlclose() the plugins while a thread one
    // of them started may still run their code. _exit() ends it all at once.
    auto* s = new spooler(host, queue, socket_fd, slot, master_pid);
    code = s->run();
  } catch (const std::exception& e) {
    spdlog::error("spooler for queue {}: unexpected exception: {}", queue.name, e.what());
    code = k_spooler_exit_uncaught;
  } catch (...) {
    spdlog::error("spooler for queue {}: unexpected exception of a non-standard type", queue.name);
    code = k_spooler_exit_uncaught;
  }
  spdlog::default_logger()->flush();
  ::_exit(code);
}

}  // namespace spoold

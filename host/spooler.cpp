#include "spooler.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <memory>
#include <vector>

#include "dir_task_source.hpp"
#include "logging.hpp"
#include "plugin_chain.hpp"
#include "queue_dir.hpp"
#include "redis_task_source.hpp"
#include "sandbox.hpp"
#include "spooler_process.hpp"
#include "task_source.hpp"

namespace spoold {

namespace {

class spooler {
 public:
  spooler(const host_config& host, const queue_config& queue, int socket_fd, spooler_slot* slot, spooler_board* board,
          pid_t master_pid)
      : host_(host), queue_(queue), socket_(socket_fd), slot_(slot), board_(board), master_pid_(master_pid) {}

  int run() {
    // Before the plugins load: their init() runs at the queue's niceness too.
    if (!apply_queue_nice(queue_)) return k_spooler_exit_nice;
    if (!host_.base_dir.empty() && ::chdir(host_.base_dir.c_str()) != 0) {
      spdlog::error("spooler for queue {}: {}", queue_.name, io_error("chdir " + host_.base_dir, errno).message);
      return k_spooler_exit_queue_dir;
    }
    export_queue_to_plugins(queue_);
    std::unique_ptr<task_source> source;
    if (queue_.redis) {
      if (int code = chain_.load(host_, queue_, slot_); code != 0) return code;
      // Connects before the sandbox, which may switch user.
      source = std::make_unique<redis_task_source>(queue_, chain_, socket_, slot_, board_, master_pid_);
    } else {
      auto dir = queue_dir::open(queue_);
      if (!dir) {
        spdlog::error("spooler for queue {}: {}", queue_.name, dir.err().message);
        return k_spooler_exit_queue_dir;
      }
      auto owned = std::make_unique<queue_dir>(std::move(*dir));
      if (int code = chain_.load(host_, queue_, slot_); code != 0) return code;
      source = std::make_unique<dir_task_source>(queue_, chain_, std::move(owned), socket_, slot_);
    }
    // Ready: the master names tasks only to spoolers whose init() returned.
    if (int code = enter_sandbox_and_report_ready(queue_, host_, master_pid_, socket_); code != 0) return code;
    spdlog::debug("spooler for queue {} ready with {}", queue_.name, chain_.text());
    run_tasks(*source);
    return source->close();
  }

 private:
  // The loop of every source (task_source.hpp), until it has no more task
  // for this spooler or the spooler is recycled.
  void run_tasks(task_source& source) {
    source_task t;
    unsigned handled = 0;
    while (source.take(t)) {
      if (!t.owed_try.empty()) {
        source.record_owed_try(t);
        continue;
      }
      limit_task_cpu(queue_.sandbox);
      const std::int64_t started = monotonic_ns();
      slot_->started_ns.store(started);
      slot_->current_seq.store(t.seq);
      chain_verdict verdict = chain_.run(t.attempt, t.id, t.args, t.body);
      verdict.took_ns = monotonic_ns() - started;
      slot_->current_seq.store(0);
      source.record(t, verdict);
      if (queue_.max_tasks != 0 && ++handled >= queue_.max_tasks) {
        spdlog::info("spooler for queue {} handled {} tasks (max_tasks): recycling", queue_.name, handled);
        slot_->leaving.store(1);
        return;
      }
      if (queue_.max_rss != 0 && rss_.past_max_rss(queue_, std::string(t.id))) {
        slot_->leaving.store(1);
        return;
      }
    }
  }

  const host_config& host_;
  const queue_config& queue_;
  int socket_;
  spooler_slot* slot_;
  spooler_board* board_;
  pid_t master_pid_;
  plugin_chain chain_;
  resident_set_reader rss_;  // opened before a sandbox hides /proc
};

}  // namespace

void run_spooler(const host_config& host, const queue_config& queue, int socket_fd, spooler_slot* slot,
                 spooler_board* board, pid_t master_pid) {
  // Nothing may unwind out of here: above this frame is the master's loop,
  // forked, which would carry on in this process as a second master.
  int code = k_spooler_exit_ok;
  try {
    reset_spooler_process(master_pid);
    setup_logging(host.log_level, host.log_format, "spooler");
    set_log_queue(queue.name);
    // Never destroyed: that would dlclose() the plugins while a thread one
    // of them started may still run their code. _exit() ends it all at once.
    auto* s = new spooler(host, queue, socket_fd, slot, board, master_pid);
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

#include "master.hpp"

#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/wait.h>

#include <algorithm>
#include <limits>
#include <memory>
#include <vector>

#include "dispatch.hpp"
#include "logging.hpp"
#include "metrics.hpp"
#include "notify.hpp"
#include "queue_runtime.hpp"
#include "reload.hpp"
#include "signals.hpp"
#include "spooler_pool.hpp"

namespace spoold {

namespace {

constexpr std::int64_t k_ms = 1'000'000;
constexpr std::int64_t k_never = std::numeric_limits<std::int64_t>::max();

std::int64_t to_ns(duration d) { return std::chrono::duration_cast<std::chrono::nanoseconds>(d).count(); }

class master {
 public:
  master(config c, instance_lock lock) : cfg_(std::move(c)), lock_(std::move(lock)) {}

  int run() {
    if (int code = setup(); code != 0) return code;
    std::size_t spoolers = 0;
    for (const auto& q : queues_) spoolers += q->cfg.processes;
    spdlog::info("spoold ready: {} queue(s), {} spooler process(es), config {}", queues_.size(), spoolers, cfg_.path);
    next_rescan_ = rescan_period() > 0 ? monotonic_ns() + rescan_period() : k_never;
    for (;;) {
      if (!stopping_) pool_->spawn_missing(queues_, cfg_.host);
      notifier_.on_turn(queues_, *pool_);
      // New names are read on every turn (a cheap non-blocking read), but
      // inotify wakes the master only when a spooler has room and nothing
      // is due: while a backlog drains, the events of the spoolers' own
      // unlinks do not cost a wake-up each.
      read_inotify();
      const bool hungry = !stopping_ && dispatcher_.dispatch(queues_, *pool_);
      arm_inotify(hungry || pool_->empty());
      if (stopping_ && pool_->empty() && !reload_) break;
      if (metrics_) metrics_->on_turn(queues_);  // after dispatch: in-flight counts are current
      wait_and_handle();
    }
    spdlog::info("spoold stopped");
    return 0;
  }

 private:
  std::int64_t rescan_period() const { return to_ns(cfg_.host.rescan_interval); }

  int setup() {
    set_fault_role("master");
    if (auto installed = signals_.install(); !installed) {
      spdlog::error("{}", installed.err().message);
      return 1;
    }
    epoll_.reset(::epoll_create1(EPOLL_CLOEXEC));
    inotify_.reset(::inotify_init1(IN_CLOEXEC | IN_NONBLOCK));
    if (!epoll_.valid() || !inotify_.valid()) {
      spdlog::error("{}", io_error("epoll/inotify setup", errno).message);
      return 1;
    }
    pool_ = std::make_unique<spooler_pool>(epoll_.get());
    if (!cfg_.host.metrics.empty()) {  // before the spoolers: it holds none of their sockets
      auto m = metrics_publisher::start(cfg_.host, pool_->board());
      if (!m) {
        spdlog::error("{}", m.err().message);
        return 2;
      }
      metrics_ = std::move(*m);
    }
    for (int fd : {signals_.fd(), inotify_.get(), lock_.fd()}) {
      if (auto w = watch(fd); !w) {
        spdlog::error("{}", w.err().message);
        return 1;
      }
    }
    for (const auto& q : cfg_.queues) {
      auto rt = open_queue(q, inotify_.get());
      if (!rt) {
        spdlog::error("{}", rt.err().message);
        return 2;
      }
      queues_.push_back(std::move(*rt));
    }
    return 0;
  }

  result<void> watch(int fd) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev) != 0) return io_error("epoll_ctl add", errno);
    return {};
  }

  void unwatch(int fd) { (void)::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, fd, nullptr); }

  // --- waiting ---------------------------------------------------------

  std::int64_t next_deadline() {
    std::int64_t wake = k_never;
    const std::int64_t mono = monotonic_ns();
    const std::int64_t real = now_ns();
    for (auto& q : queues_) {
      if (q->retired) continue;
      if (q->respawn_at > mono) wake = std::min(wake, q->respawn_at);
      if (!q->index) continue;
      const std::int64_t due = q->index->next_wakeup();
      if (due != k_never) wake = std::min(wake, mono + std::max<std::int64_t>(0, due - real));
    }
    wake = std::min(wake, pool_->next_deadline(k_stall_ns));
    wake = std::min(wake, next_rescan_);
    if (reload_) wake = std::min(wake, reload_->check.deadline());
    if (stopping_) wake = std::min(wake, shutdown_deadline_);
    if (metrics_) wake = std::min(wake, metrics_->next_deadline());
    wake = std::min(wake, notifier_.next_deadline());
    return wake;
  }

  void wait_and_handle() {
    const std::int64_t deadline = next_deadline();
    int timeout_ms = -1;
    if (deadline != k_never) {
      const std::int64_t left = deadline - monotonic_ns();
      timeout_ms = left <= 0 ? 0 : static_cast<int>(std::min<std::int64_t>((left + k_ms - 1) / k_ms, 60'000));
    }
    epoll_event events[64];
    const int n = ::epoll_wait(epoll_.get(), events, 64, timeout_ms);
    for (int i = 0; i < n; ++i) {
      const int fd = events[i].data.fd;
      if (fd == signals_.fd()) {
        signals_.drain();
      } else if (fd == inotify_.get()) {
        read_inotify();
      } else if (fd == lock_.fd()) {
        lock_.accept_knock();
      } else if (reload_ && fd == reload_->check.fd()) {
        on_check_output();
      } else if (spooler_proc* p = pool_->find_by_fd(fd)) {
        pool_->read_reports(*p);
        if ((events[i].events & (EPOLLHUP | EPOLLERR)) != 0) unwatch(fd);
      }
    }
    on_signals(signals_.take());
    on_timers();
  }

  // --- events ------------------------------------------------------------

  void on_signals(const signal_events& e) {
    if (e.child_exited) on_children_exited();
    if (e.stop > stops_seen_) on_stop(e.stop);
    if (e.reload) on_reload_requested();
    if (e.status) on_status_requested();
    if (e.ignored_user2) spdlog::info("SIGUSR2 has no meaning for spoold: ignored (USR1 logs a status line)");
    if (e.ignored_alarm) spdlog::info("SIGALRM has no meaning for spoold: ignored");
  }

  void on_children_exited() {
    for (;;) {
      int status = 0;
      const pid_t pid = ::waitpid(-1, &status, WNOHANG);
      if (pid <= 0) return;
      if (reload_ && pid == reload_->check.pid()) {
        on_check_exited(status);
      } else if (metrics_ && metrics_->on_exit(pid, status)) {
        // a new metrics process starts on the next turn
      } else {
        (void)pool_->on_exit(pid, status, stopping_);
      }
    }
  }

  void on_stop(unsigned count) {
    stops_seen_ = count;
    if (stopping_) {
      if (!forced_) force_stop("a second stop signal came");
      return;
    }
    stopping_ = true;
    notifier_.on_stopping();
    if (reload_) reload_->check.kill_it();
    shutdown_deadline_ = monotonic_ns() + to_ns(cfg_.host.shutdown_grace);
    std::size_t busy = 0;
    for (const auto& [pid, p] : pool_->procs()) {
      if (p->slot->current_seq.load() != 0) ++busy;
    }
    pool_->retire_all();
    spdlog::info("stopping: letting {} task(s) in hand finish (up to {}), taking no new ones", busy,
                 format_duration(cfg_.host.shutdown_grace));
  }

  void force_stop(const std::string& why) {
    forced_ = true;
    if (!pool_->empty()) {
      spdlog::warn("{}: killing {} spooler(s); their tasks stay pending, no try counted", why, pool_->size());
    }
    pool_->kill_all_for_shutdown();
  }

  void on_reload_requested() {
    if (stopping_) return;
    if (reload_) {
      reload_->again = true;  // the file changed again while being checked
      return;
    }
    notifier_.on_reloading();
    reload_ = begin_reload(cfg_.path);
    if (!reload_) notifier_.on_reload_refused();
    if (reload_ && !watch(reload_->check.fd())) reload_->check_output_ended = true;
  }

  void on_check_output() {
    if (reload_->check.read_output() && !reload_->check_output_ended) {
      reload_->check_output_ended = true;
      unwatch(reload_->check.fd());
    }
  }

  void on_check_exited(int status) {
    std::unique_ptr<pending_reload> done = std::move(reload_);
    if (!done->check_output_ended) unwatch(done->check.fd());
    (void)done->check.read_output();
    const auto problems = done->check.problems(status);
    if (stopping_) {
      spdlog::info("reload abandoned: the host is stopping");
    } else if (!problems.empty()) {
      for (const auto& p : problems) spdlog::error("reload refused: {}", p);
      spdlog::error("reload refused: the running configuration stays in force");
      notifier_.on_reload_refused();
    } else {
      const std::string metrics = cfg_.host.metrics;
      apply_reload(cfg_, std::move(done->next), queues_, *pool_, inotify_.get());
      if (cfg_.host.metrics != metrics) {
        spdlog::warn("reload: host.metrics changed from \"{}\" to \"{}\": it takes effect when spoold restarts", metrics,
                     cfg_.host.metrics);
        cfg_.host.metrics = metrics;
      }
      notifier_.on_reload_applied();
      next_rescan_ = rescan_period() > 0 ? monotonic_ns() + rescan_period() : k_never;
    }
    if (done->again && !stopping_) on_reload_requested();
  }

  // One line per queue, from what the master knows: nothing is read from
  // disk but the count of failed/.
  void on_status_requested() {
    for (auto& q : queues_) {
      const auto [alive, ready] = pool_->count(q.get());
      if (!q->index) {
        // A Redis queue: the backlog its spoolers read last (the master
        // never waits on Redis).
        status_counts line;
        line.queue = q->cfg.name;
        std::string note = "(Redis stream " + q->cfg.redis->stream + " at " + q->cfg.redis->url.display() + ")";
        const std::int64_t now = now_ms();
        const auto b = pool_->board() != nullptr ? pool_->board()->backlog(backlog_key(q->cfg), now) : std::nullopt;
        if (b) {
          if (now - b->read_at_ms >= 2000) note += " backlog read " + std::to_string((now - b->read_at_ms) / 1000) + "s ago";
          line.counts = {{"pending", b->waiting}, {"delayed", b->delayed},     {"ignored", b->ignored},
                         {"failed", b->failed},   {"in_flight", b->in_flight}, {"spoolers", alive},
                         {"ready", ready},        {"restarts", q->restarts}};
        } else {
          line.counts = {{"spoolers", alive}, {"ready", ready}, {"restarts", q->restarts}};
          note += " backlog unknown: no spooler read it from Redis in the last minute";
        }
        line.note = note;
        log_status_line(line);
        continue;
      }
      const auto c = q->index->count();
      status_counts line;
      line.queue = q->cfg.name;
      line.counts = {{"pending", c.pending},         {"delayed", c.delayed},     {"ignored", c.ignored},
                     {"failed", q->dir->count_failed()}, {"in_flight", c.in_flight}, {"spoolers", alive},
                     {"ready", ready},                  {"restarts", q->restarts}};
      line.pending_complete = c.complete;
      line.note = q->retired ? "(retired by a reload)" : "";
      log_status_line(line);
    }
  }

  void on_timers() {
    pool_->enforce_timeouts();
    dispatcher_.take_back_from_stalled(*pool_);
    const std::int64_t mono = monotonic_ns();
    if (mono >= next_rescan_) {
      for (auto& q : queues_) {
        if (q->retired || !q->index) continue;
        q->index->rescan();
        q->dir->remove_stale_temp_files(k_stale_temp_age_ns, now_ns(), true);
      }
      next_rescan_ = mono + rescan_period();
    }
    if (reload_ && mono >= reload_->check.deadline()) reload_->check.kill_it();
    if (stopping_ && mono >= shutdown_deadline_ && !forced_) {
      force_stop("shutdown_grace of " + format_duration(cfg_.host.shutdown_grace) + " passed");
    }
    drop_retired_queues();
    notifier_.on_timer(queues_, *pool_);
  }

  // Removed from the epoll set, not just masked: a masked fd still leaves a
  // waiter on the inotify queue that every unlink in the queue runs.
  void arm_inotify(bool armed) {
    if (armed == inotify_armed_) return;
    if (armed) {
      if (auto w = watch(inotify_.get()); !w) {
        spdlog::error("{}: new tasks are found by the rescan only", w.err().message);
        return;
      }
    } else {
      unwatch(inotify_.get());
    }
    inotify_armed_ = armed;
  }

  void read_inotify() {
    alignas(inotify_event) char buf[64 * 1024];
    for (;;) {
      const ssize_t n = ::read(inotify_.get(), buf, sizeof(buf));
      if (n <= 0) return;
      for (std::size_t pos = 0; pos < static_cast<std::size_t>(n);) {
        const auto* e = reinterpret_cast<const inotify_event*>(buf + pos);
        pos += sizeof(inotify_event) + e->len;
        if ((e->mask & IN_Q_OVERFLOW) != 0) {
          spdlog::warn("inotify queue overflowed: rescanning every queue");
          for (auto& q : queues_) {
            if (q->index) q->index->rescan();
          }
          continue;
        }
        for (auto& q : queues_) {
          if (q->index && q->index->owns(e->wd)) {
            q->index->on_event(*e);
            break;
          }
        }
      }
    }
  }

  void drop_retired_queues() {
    for (auto it = queues_.begin(); it != queues_.end();) {
      if ((*it)->retired && !pool_->uses(it->get())) {
        it = queues_.erase(it);
      } else {
        ++it;
      }
    }
  }

  config cfg_;
  instance_lock lock_;
  signal_pipe signals_;
  unique_fd epoll_;
  unique_fd inotify_;
  // Destroyed before the queues: spoolers point at their queue.
  std::vector<std::unique_ptr<queue_runtime>> queues_;
  std::unique_ptr<spooler_pool> pool_;
  dispatcher dispatcher_;
  std::unique_ptr<pending_reload> reload_;
  std::unique_ptr<metrics_publisher> metrics_;
  service_notifier notifier_;
  unsigned stops_seen_ = 0;
  bool stopping_ = false;
  bool inotify_armed_ = true;
  bool forced_ = false;
  std::int64_t shutdown_deadline_ = k_never;
  std::int64_t next_rescan_ = k_never;
};

}  // namespace

int run_master(config c, instance_lock lock) {
  master m(std::move(c), std::move(lock));
  return m.run();
}

}  // namespace spoold

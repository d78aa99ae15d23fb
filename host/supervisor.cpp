#include "supervisor.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <deque>
#include <limits>
#include <map>
#include <memory>
#include <unordered_map>

#include "backoff.hpp"
#include "logging.hpp"
#include "plugin_check.hpp"
#include "process_status.hpp"
#include "queue_index.hpp"
#include "spooler.hpp"

namespace spoold {

namespace {

// Tasks a spooler may hold at once: the one it runs and the ones waiting
// behind it, so it never sits idle waiting for the master between tasks.
// Two hide one round trip. A queue of short tasks (averaging under
// k_short_task_ns in the plugin chain) gets a pipeline sized by time: about
// k_in_hand_ns of work per spooler, at most k_max_depth names. A spooler then
// runs a burst per wake-up of the master and never starves while the master
// waits for a core, and a task waits behind about a millisecond of other
// work, as long as tasks take their usual time (see k_stall_ns for those
// that do not).
constexpr std::size_t k_depth = 2;
constexpr std::size_t k_max_depth = 64;
constexpr double k_in_hand_ns = 1'000'000;
constexpr double k_short_task_ns = 500'000;
static_assert(k_max_depth / 2 <= k_max_batch, "a batch is half a pipeline and must fit in one message");
constexpr std::int64_t k_ms = 1'000'000;
// A task that has run this long (far beyond the ~1 ms a pipeline holds)
// would hold up the names queued behind it in its spooler: the master gives
// them to other spoolers and names no more to that one until the task ends.
constexpr std::int64_t k_stall_ns = 10 * k_ms;
constexpr std::int64_t k_fast_exit_ns = 1'000 * k_ms;
constexpr std::int64_t k_max_respawn_pause_ns = 30'000 * k_ms;
constexpr std::int64_t k_never = std::numeric_limits<std::int64_t>::max();

int g_signal_pipe_write = -1;
volatile sig_atomic_t g_got_chld = 0;
volatile sig_atomic_t g_got_term = 0;
volatile sig_atomic_t g_got_hup = 0;

void on_signal(int sig) {
  const int saved = errno;
  if (sig == SIGCHLD) g_got_chld = 1;
  else if (sig == SIGHUP) g_got_hup = 1;
  else g_got_term = g_got_term + 1;
  const char byte = 0;
  (void)!::write(g_signal_pipe_write, &byte, 1);
  errno = saved;
}

std::size_t pipeline_depth(double avg_task_ns) {
  if (avg_task_ns >= k_short_task_ns) return k_depth;
  const double names = k_in_hand_ns / std::max(1.0, avg_task_ns);
  return std::clamp(static_cast<std::size_t>(names), k_depth, k_max_depth);
}

std::int64_t to_ns(duration d) { return std::chrono::duration_cast<std::chrono::nanoseconds>(d).count(); }

struct queue_runtime {
  queue_config cfg;
  std::unique_ptr<queue_dir> dir;
  std::unique_ptr<queue_index> index;
  bool retired = false;        // removed by a reload: no new spoolers, no new tasks
  unsigned fast_exits = 0;     // spoolers in a row that died before taking a task
  double avg_task_ns = 1e9;    // moving average of time in the plugin chain; starts "slow"
  std::int64_t respawn_at = 0; // monotonic; no new spooler before
};

struct spooler_proc {
  pid_t pid = 0;
  unique_fd sock;
  spooler_slot* slot = nullptr;
  queue_runtime* queue = nullptr;
  std::deque<assignment> in_hand;
  std::int64_t started = 0;  // monotonic
  std::uint64_t reports = 0;
  bool retiring = false;
  bool timed_out = false;
  bool killed_for_shutdown = false;
  std::uint64_t stalled_seq = 0;  // a long task whose waiting names were taken back
  // Inside the long task of take_back_from_stalled(): gets no names.
  bool stalled() const { return stalled_seq != 0 && slot->current_seq.load() == stalled_seq; }
};

class supervisor {
 public:
  explicit supervisor(config c) : cfg_(std::move(c)) {}

  int run() {
    if (int code = setup(); code != 0) return code;
    std::size_t spoolers = 0;
    for (const auto& q : queues_) spoolers += q->cfg.processes;
    spdlog::info("spoold ready: {} queue(s), {} spooler process(es), config {}", queues_.size(), spoolers, cfg_.path);
    next_rescan_ = rescan_period() > 0 ? monotonic_ns() + rescan_period() : k_never;
    for (;;) {
      spawn_missing();
      // New names are read on every turn (a cheap non-blocking read), but
      // inotify wakes the master only when a spooler has room and nothing
      // is due: while a backlog drains, the events of the spoolers' own
      // unlinks do not cost a wake-up each.
      read_inotify();
      arm_inotify(dispatch() || procs_.empty());
      if (shutting_down_ && procs_.empty()) break;
      wait_and_handle();
    }
    spdlog::info("spoold stopped");
    return 0;
  }

 private:
  std::int64_t rescan_period() const { return to_ns(cfg_.host.rescan_interval); }

  int setup() {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) {
      spdlog::error("{}", io_error("signal pipe", errno).message);
      return 1;
    }
    signal_read_.reset(fds[0]);
    signal_write_.reset(fds[1]);
    g_signal_pipe_write = fds[1];
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    for (int sig : {SIGCHLD, SIGTERM, SIGINT, SIGHUP}) ::sigaction(sig, &sa, nullptr);
    ::signal(SIGPIPE, SIG_IGN);
    epoll_.reset(::epoll_create1(EPOLL_CLOEXEC));
    inotify_.reset(::inotify_init1(IN_CLOEXEC | IN_NONBLOCK));
    if (!epoll_.valid() || !inotify_.valid()) {
      spdlog::error("{}", io_error("epoll/inotify setup", errno).message);
      return 1;
    }
    watch(signal_read_.get());
    watch(inotify_.get());
    for (const auto& q : cfg_.queues) {
      auto rt = open_queue(q);
      if (!rt) {
        spdlog::error("{}", rt.err().message);
        return 2;
      }
      queues_.push_back(std::move(*rt));
    }
    return 0;
  }

  void watch(int fd) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    ::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev);
  }

  result<std::unique_ptr<queue_runtime>> open_queue(const queue_config& q) {
    auto dir = queue_dir::open(q);
    if (!dir) return dir.err();
    auto rt = std::make_unique<queue_runtime>();
    rt->cfg = q;
    rt->dir = std::make_unique<queue_dir>(std::move(*dir));
    if (unsigned n = rt->dir->remove_stale_temp_files(k_stale_temp_age_ns, now_ns(), true); n > 0) {
      spdlog::info("queue {}: removed {} stale temporary file(s) left by a crash", q.name, n);
    }
    rt->index = std::make_unique<queue_index>(*rt->dir, inotify_.get());
    if (auto started = rt->index->start(); !started) return started.err();
    return rt;
  }

  // --- spooler processes -------------------------------------------------

  void spawn_missing() {
    if (shutting_down_) return;
    const std::int64_t now = monotonic_ns();
    for (auto& q : queues_) {
      if (q->retired || now < q->respawn_at) continue;
      std::size_t live = 0;
      for (const auto& [pid, p] : procs_) {
        if (p->queue == q.get() && !p->retiring) ++live;
      }
      for (; live < q->cfg.processes; ++live) {
        if (!spawn(*q)) break;
      }
    }
  }

  bool spawn(queue_runtime& q) {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
      spdlog::error("queue {}: {}", q.cfg.name, io_error("socketpair for a spooler", errno).message);
      q.respawn_at = monotonic_ns() + 1000 * k_ms;
      return false;
    }
    void* mem = ::mmap(nullptr, sizeof(spooler_slot), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) {
      spdlog::error("queue {}: {}", q.cfg.name, io_error("mmap a spooler slot", errno).message);
      ::close(sv[0]);
      ::close(sv[1]);
      q.respawn_at = monotonic_ns() + 1000 * k_ms;
      return false;
    }
    auto* slot = new (mem) spooler_slot();
    const pid_t master = ::getpid();
    spdlog::default_logger()->flush();
    const pid_t pid = ::fork();
    if (pid < 0) {
      spdlog::error("queue {}: {}", q.cfg.name, io_error("fork a spooler", errno).message);
      ::close(sv[0]);
      ::close(sv[1]);
      ::munmap(mem, sizeof(spooler_slot));
      q.respawn_at = monotonic_ns() + 1000 * k_ms;
      return false;
    }
    if (pid == 0) {
      // Keep only stdio and our end of the socket: a spooler holding other
      // spoolers' sockets would keep them from seeing the master go.
      if (sv[1] != 3) ::dup2(sv[1], 3);
      ::close_range(4, ~0U, 0);
      run_spooler(cfg_.host, q.cfg, 3, slot, master);
    }
    ::close(sv[1]);
    auto p = std::make_unique<spooler_proc>();
    p->pid = pid;
    p->sock.reset(sv[0]);
    ::fcntl(sv[0], F_SETFL, O_NONBLOCK);
    p->slot = slot;
    p->queue = &q;
    p->started = monotonic_ns();
    watch(sv[0]);
    by_fd_[sv[0]] = p.get();
    spdlog::info("spooler {} (queue {}) started", pid, q.cfg.name);
    procs_.emplace(pid, std::move(p));
    return true;
  }

  // Asks a spooler to finish the task in hand and exit: no more tasks.
  void retire(spooler_proc& p) {
    if (p.retiring) return;
    p.retiring = true;
    p.slot->stop.store(1);
    ::shutdown(p.sock.get(), SHUT_WR);
  }

  void reap() {
    for (;;) {
      int status = 0;
      const pid_t pid = ::waitpid(-1, &status, WNOHANG);
      if (pid <= 0) return;
      auto it = procs_.find(pid);
      if (it == procs_.end()) continue;
      on_spooler_exit(*it->second, status);
      by_fd_.erase(it->second->sock.get());
      ::munmap(it->second->slot, sizeof(spooler_slot));
      procs_.erase(it);
    }
  }

  void on_spooler_exit(spooler_proc& p, int status) {
    read_reports(p);
    queue_runtime& q = *p.queue;
    const std::uint64_t current = p.slot->current_seq.load();
    std::string how = describe_exit(status);
    const bool clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    std::string task_note;
    for (const auto& a : p.in_hand) {
      if (current != 0 && a.seq == current) {
        task_note = " while handling " + a.task;
        if (p.killed_for_shutdown) {
          q.index->on_returned(a.task);  // cut short by shutdown: not a try
        } else {
          count_try(q, a.task, p.timed_out ? "timed out after " + format_duration(q.cfg.timeout) : "spooler " + how);
        }
      } else {
        q.index->on_returned(a.task);
      }
    }
    p.in_hand.clear();
    const std::int64_t lived = monotonic_ns() - p.started;
    if (clean) {
      spdlog::info("spooler {} (queue {}) {}", p.pid, q.cfg.name, how);
    } else if (p.killed_for_shutdown) {
      spdlog::warn("spooler {} (queue {}) killed after shutdown_grace{}", p.pid, q.cfg.name, task_note);
    } else {
      spdlog::warn("spooler {} (queue {}) {}{}", p.pid, q.cfg.name, p.timed_out ? "killed at its timeout" : how, task_note);
    }
    if (shutting_down_ || p.retiring || q.retired) return;
    // A spooler that dies on its own before taking any task (a plugin whose
    // init crashes) is throttled; one killed from outside is not its fault.
    const bool killed = WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
    if (!clean && !killed && p.reports == 0 && current == 0 && lived < k_fast_exit_ns) {
      ++q.fast_exits;
      const std::int64_t pause = std::min<std::int64_t>(100 * k_ms << std::min(q.fast_exits - 1, 20u), k_max_respawn_pause_ns);
      q.respawn_at = monotonic_ns() + pause;
      spdlog::warn("queue {}: spooler {} died {}ms after it started, before taking a task ({} in a row): next start in {}ms",
                   q.cfg.name, p.pid, lived / k_ms, q.fast_exits, pause / k_ms);
    }
  }

  // A spooler died inside a task: record the try in the file, as a Retry.
  void count_try(queue_runtime& q, const std::string& rel, const std::string& why) {
    auto ref = task_ref::from_relative(rel);
    if (!ref) return;
    if (auto dir = q.dir->subdir(ref->priority)) {
      ::unlinkat(*dir, (std::string(k_temp_prefix) + ref->name).c_str(), 0);
    }
    const std::int64_t now = now_ns();
    auto c = q.dir->claim(*ref, now, false);
    report r;
    r.identity = c.identity;
    r.due_ns = c.due_ns;
    switch (c.status) {
      case claim_status::claimed: {
        claimed_task& task = *c.task;
        const unsigned tries = task.attempt + 1;
        if (tries >= q.cfg.max_attempts) {
          const std::string text = why + " (gave up after " + std::to_string(tries) + " of max_attempts " +
                                   std::to_string(q.cfg.max_attempts) + ")";
          if (auto f = q.dir->fail(task, tries, text); !f) {
            spdlog::error("task {} queue={}: cannot move it to failed/: {}", ref->name, q.cfg.name, f.err().message);
            r.result = outcome::io_error;
          } else {
            spdlog::warn("task {} queue={} status=crash attempt={}: moved to failed/: {}", ref->name, q.cfg.name,
                         task.attempt, text);
            r.result = outcome::failed;
          }
        } else {
          const duration delay = retry_delay(tries, q.cfg.backoff, q.cfg.backoff_max, random_jitter());
          r.due_ns = now + to_ns(delay);
          if (auto re = q.dir->reschedule(task, tries, why, r.due_ns); !re) {
            spdlog::error("task {} queue={}: cannot reschedule it: {}", ref->name, q.cfg.name, re.err().message);
            r.result = outcome::io_error;
          } else {
            spdlog::warn("task {} queue={} status=crash attempt={} next_try_in={}: {}", ref->name, q.cfg.name,
                         task.attempt, format_duration(delay), why);
            r.result = outcome::rescheduled;
          }
        }
        break;
      }
      case claim_status::busy: r.result = outcome::busy; break;
      case claim_status::gone: r.result = outcome::gone; break;
      case claim_status::unparsable: r.result = outcome::unparsable; break;
      case claim_status::rejected: r.result = outcome::rejected; break;
      default: r.result = outcome::io_error; break;
    }
    q.index->on_report(rel, r, now);
  }

  void read_reports(spooler_proc& p) {
    std::array<report, k_max_batch * 2> batch;
    for (;;) {
      const ssize_t n = ::recv(p.sock.get(), batch.data(), sizeof(batch), MSG_DONTWAIT);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return;
      const std::size_t count = static_cast<std::size_t>(n) / sizeof(report);
      const std::int64_t now = now_ns();
      for (std::size_t i = 0; i < count; ++i) on_report(p, batch[i], now);
    }
  }

  void on_report(spooler_proc& p, const report& r, std::int64_t now) {
    ++p.reports;
    p.queue->fast_exits = 0;
    auto it = std::find_if(p.in_hand.begin(), p.in_hand.end(), [&](const assignment& a) { return a.seq == r.seq; });
    if (it == p.in_hand.end()) return;
    if (r.handle_ns >= 0) {
      p.queue->avg_task_ns = p.queue->avg_task_ns * 0.9 + static_cast<double>(r.handle_ns) * 0.1;
    }
    spdlog::trace("queue {}: #{} {} <- spooler {}: outcome {} due {}", p.queue->cfg.name, r.seq, it->task, p.pid,
                  static_cast<int>(r.result), r.due_ns);
    p.queue->index->on_report(it->task, r, now);
    p.in_hand.erase(it);
  }

  // --- the loop ------------------------------------------------------------

  // Names due tasks to spoolers with room, a batch per message. Returns
  // true when some spooler has room and nothing is due: the master then
  // needs inotify events to wake it.
  bool dispatch() {
    if (shutting_down_) return false;
    const std::int64_t now = now_ns();
    bool hungry = false;
    std::string message;
    for (auto& q : queues_) {
      if (q->retired) continue;
      const std::size_t depth = pipeline_depth(q->avg_task_ns);
      // Hand out half a pipeline at a time so that spoolers share a burst
      // evenly.
      const std::size_t chunk = depth > k_depth ? depth / 2 : 1;
      for (bool more = true; more;) {
        spooler_proc* best = nullptr;
        for (auto& [pid, p] : procs_) {
          if (p->queue != q.get() || p->retiring || p->in_hand.size() >= depth || p->stalled()) continue;
          if (best == nullptr || p->in_hand.size() < best->in_hand.size()) best = p.get();
        }
        if (best == nullptr) break;
        message.clear();
        const std::size_t first = best->in_hand.size();
        for (std::size_t i = 0; i < chunk && best->in_hand.size() < depth; ++i) {
          auto task = q->index->next_due(now);
          if (!task) {
            more = false;
            hungry = true;
            break;
          }
          best->in_hand.push_back(assignment{++seq_, std::move(*task)});
          append(best->in_hand.back(), message);
          spdlog::trace("queue {}: #{} {} -> spooler {}", q->cfg.name, seq_, best->in_hand.back().task, best->pid);
        }
        if (message.empty()) break;
        if (::send(best->sock.get(), message.data(), message.size(), MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
          // A spooler we cannot talk to is replaced; its batch goes back.
          while (best->in_hand.size() > first) {
            q->index->on_returned(best->in_hand.back().task);
            best->in_hand.pop_back();
          }
          retire(*best);
        }
      }
    }
    return hungry;
  }

  std::int64_t next_deadline() {
    std::int64_t wake = k_never;
    const std::int64_t mono = monotonic_ns();
    const std::int64_t real = now_ns();
    for (auto& q : queues_) {
      if (q->retired) continue;
      const std::int64_t due = q->index->next_wakeup();
      if (due != k_never) wake = std::min(wake, mono + std::max<std::int64_t>(0, due - real));
      if (q->respawn_at > mono) wake = std::min(wake, q->respawn_at);
    }
    for (auto& [pid, p] : procs_) {
      const std::uint64_t seq = p->slot->current_seq.load();
      if (seq == 0) continue;
      const std::int64_t started = p->slot->started_ns.load();
      if (seq != p->stalled_seq) wake = std::min(wake, started + k_stall_ns);
      const auto timeout = to_ns(p->queue->cfg.timeout);
      if (timeout > 0 && !p->timed_out) wake = std::min(wake, started + timeout);
    }
    wake = std::min(wake, next_rescan_);
    if (shutting_down_) wake = std::min(wake, shutdown_deadline_);
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
      if (fd == signal_read_.get()) {
        char drain[64];
        while (::read(fd, drain, sizeof(drain)) > 0) {
        }
      } else if (fd == inotify_.get()) {
        read_inotify();
      } else if (auto it = by_fd_.find(fd); it != by_fd_.end()) {
        read_reports(*it->second);
        if ((events[i].events & (EPOLLHUP | EPOLLERR)) != 0) {
          ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, fd, nullptr);
        }
      }
    }
    if (g_got_chld != 0) {
      g_got_chld = 0;
      reap();
    }
    if (g_got_term != 0) begin_shutdown();
    if (g_got_hup != 0) {
      g_got_hup = 0;
      if (!shutting_down_) reload();
    }
    enforce_timeouts();
    take_back_from_stalled();
    const std::int64_t mono = monotonic_ns();
    if (mono >= next_rescan_) {
      for (auto& q : queues_) {
        if (q->retired) continue;
        q->index->rescan();
        q->dir->remove_stale_temp_files(k_stale_temp_age_ns, now_ns(), true);
      }
      next_rescan_ = mono + rescan_period();
    }
    if (shutting_down_ && mono >= shutdown_deadline_ && !forced_) force_stop("shutdown_grace of " + format_duration(cfg_.host.shutdown_grace) + " passed");
    drop_retired_queues();
  }

  // Removed from the epoll set, not just masked: a masked fd still leaves a
  // waiter on the inotify queue that every unlink in the queue runs.
  void arm_inotify(bool armed) {
    if (armed == inotify_armed_) return;
    if (armed) {
      watch(inotify_.get());
    } else {
      ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, inotify_.get(), nullptr);
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
          for (auto& q : queues_) q->index->rescan();
          continue;
        }
        for (auto& q : queues_) {
          if (q->index->owns(e->wd)) {
            q->index->on_event(*e);
            break;
          }
        }
      }
    }
  }

  void enforce_timeouts() {
    const std::int64_t mono = monotonic_ns();
    for (auto& [pid, p] : procs_) {
      const auto timeout = to_ns(p->queue->cfg.timeout);
      if (timeout <= 0 || p->timed_out) continue;
      const std::uint64_t seq = p->slot->current_seq.load();
      if (seq == 0 || mono - p->slot->started_ns.load() < timeout) continue;
      std::string task = "?";
      for (const auto& a : p->in_hand) {
        if (a.seq == seq) task = a.task;
      }
      spdlog::warn("spooler {} (queue {}) has run task {} past its timeout of {}: killing it", pid, p->queue->cfg.name,
                   task, format_duration(p->queue->cfg.timeout));
      p->timed_out = true;
      ::kill(pid, SIGKILL);
    }
  }

  // Names queued behind a task that has run past k_stall_ns go back to the
  // index for the other spoolers (the spooler is told to skip them), and
  // the spooler gets no more until that task ends.
  void take_back_from_stalled() {
    const std::int64_t mono = monotonic_ns();
    for (auto& [pid, p] : procs_) {
      const std::uint64_t seq = p->slot->current_seq.load();
      if (seq == 0 || seq == p->stalled_seq || mono - p->slot->started_ns.load() < k_stall_ns) continue;
      p->stalled_seq = seq;
      if (p->in_hand.empty() || p->in_hand.back().seq <= seq) continue;
      p->slot->revoked_to.store(p->in_hand.back().seq);
      p->slot->revoked_after.store(seq);
      std::size_t returned = 0;
      for (; !p->in_hand.empty() && p->in_hand.back().seq > seq; ++returned) {
        p->queue->index->on_returned(p->in_hand.back().task);
        p->in_hand.pop_back();
      }
      spdlog::debug("spooler {} (queue {}) is in a long task: {} name(s) queued behind it go to other spoolers", pid,
                    p->queue->cfg.name, returned);
    }
  }

  void begin_shutdown() {
    if (shutting_down_) {
      if (g_got_term > 1 && !forced_) force_stop("a second stop signal came");
      return;
    }
    shutting_down_ = true;
    shutdown_deadline_ = monotonic_ns() + to_ns(cfg_.host.shutdown_grace);
    std::size_t busy = 0;
    for (auto& [pid, p] : procs_) {
      if (p->slot->current_seq.load() != 0) ++busy;
      retire(*p);
    }
    spdlog::info("stopping: letting {} task(s) in hand finish (up to {}), taking no new ones", busy,
                 format_duration(cfg_.host.shutdown_grace));
  }

  void force_stop(const std::string& why) {
    forced_ = true;
    if (!procs_.empty()) spdlog::warn("{}: killing {} spooler(s); their tasks stay pending, no try counted", why, procs_.size());
    for (auto& [pid, p] : procs_) {
      p->killed_for_shutdown = true;
      ::kill(pid, SIGKILL);
    }
  }

  // Re-reads the config and the plugin folder. A bad file changes nothing.
  void reload() {
    spdlog::info("SIGHUP: re-reading {}", cfg_.path);
    auto loaded = load_config(cfg_.path);
    if (loaded.ok()) {
      auto plugin_problems = check_plugins_in_child(loaded.value);
      loaded.problems.insert(loaded.problems.end(), plugin_problems.begin(), plugin_problems.end());
    }
    if (!loaded.ok()) {
      for (const auto& p : loaded.problems) spdlog::error("reload refused: {}", p);
      spdlog::error("reload refused: the running configuration stays in force");
      return;
    }
    config next = std::move(loaded.value);
    std::vector<std::unique_ptr<queue_runtime>> kept;
    std::vector<std::unique_ptr<queue_runtime>> added;
    for (const auto& q : next.queues) {
      auto same = std::find_if(queues_.begin(), queues_.end(), [&](const auto& rt) { return rt && !rt->retired && rt->cfg.dir == q.dir; });
      if (same != queues_.end()) {
        (*same)->cfg = q;
        (*same)->fast_exits = 0;
        (*same)->respawn_at = 0;
        kept.push_back(std::move(*same));
        continue;
      }
      auto rt = open_queue(q);
      if (!rt) {
        spdlog::error("reload: queue {} not started: {}", q.name, rt.err().message);
        continue;
      }
      added.push_back(std::move(*rt));
    }
    for (auto& rt : queues_) {
      if (rt) {
        rt->retired = true;
        kept.push_back(std::move(rt));
      }
    }
    // Every running spooler was started from the old file: replace them all.
    for (auto& [pid, p] : procs_) retire(*p);
    for (auto& rt : added) kept.push_back(std::move(rt));
    queues_ = std::move(kept);
    cfg_ = std::move(next);
    next_rescan_ = rescan_period() > 0 ? monotonic_ns() + rescan_period() : k_never;
    spdlog::info("reloaded: {} queue(s)", cfg_.queues.size());
  }

  void drop_retired_queues() {
    for (auto it = queues_.begin(); it != queues_.end();) {
      const queue_runtime* q = it->get();
      const bool in_use = std::any_of(procs_.begin(), procs_.end(), [&](const auto& kv) { return kv.second->queue == q; });
      if ((*it)->retired && !in_use) {
        it = queues_.erase(it);
      } else {
        ++it;
      }
    }
  }

  config cfg_;
  unique_fd signal_read_;
  unique_fd signal_write_;
  unique_fd epoll_;
  unique_fd inotify_;
  std::vector<std::unique_ptr<queue_runtime>> queues_;
  std::map<pid_t, std::unique_ptr<spooler_proc>> procs_;
  std::unordered_map<int, spooler_proc*> by_fd_;
  std::uint64_t seq_ = 0;
  bool shutting_down_ = false;
  bool inotify_armed_ = true;
  bool forced_ = false;
  std::int64_t shutdown_deadline_ = k_never;
  std::int64_t next_rescan_ = k_never;
};

}  // namespace

int run_supervisor(config c) {
  supervisor s(std::move(c));
  return s.run();
}

}  // namespace spoold

#include "spooler_pool.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <limits>

#include "logging.hpp"
#include "metrics.hpp"
#include "process_status.hpp"
#include "spooler.hpp"

namespace spoold {

namespace {
constexpr std::int64_t k_ms = 1'000'000;
constexpr std::int64_t k_first_pause_ns = 100 * k_ms;
constexpr std::int64_t k_max_respawn_pause_ns = 30'000 * k_ms;
constexpr std::int64_t k_never = std::numeric_limits<std::int64_t>::max();

std::int64_t to_ns(duration d) { return std::chrono::duration_cast<std::chrono::nanoseconds>(d).count(); }

const std::string& plugin_in_init(const spooler_proc& p) {
  static const std::string unknown = "?";
  const auto& chain = p.queue->cfg.plugins;
  const std::uint32_t i = p.slot->init_plugin.load();
  return i < chain.size() ? chain[i] : unknown;
}
}  // namespace

spooler_pool::~spooler_pool() {
  for (auto& [pid, p] : procs_) ::munmap(p->slot, sizeof(spooler_slot));
  unmap_spooler_board(board_);
}

void spooler_pool::spawn_missing(std::vector<std::unique_ptr<queue_runtime>>& queues, const host_config& host) {
  const std::int64_t now = monotonic_ns();
  for (auto& q : queues) {
    if (q->retired || now < q->respawn_at) continue;
    std::size_t live = 0;
    for (const auto& [pid, p] : procs_) {
      if (p->queue == q.get() && !p->retiring) ++live;
    }
    for (; live < q->cfg.processes; ++live) {
      if (!spawn(*q, host)) break;
    }
  }
}

bool spooler_pool::spawn(queue_runtime& q, const host_config& host) {
  const auto fail = [&](const std::string& message) {
    spdlog::error("queue {}: {}: next try in 1s", q.cfg.name, message);
    q.respawn_at = monotonic_ns() + 1000 * k_ms;
    return false;
  };
  auto pair = make_socketpair(SOCK_SEQPACKET, "a spooler of queue " + q.cfg.name);
  if (!pair) return fail(pair.err().message);
  unique_fd ours = std::move(pair->first);
  unique_fd theirs = std::move(pair->second);
  void* mem = ::mmap(nullptr, sizeof(spooler_slot), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) return fail(io_error("mmap a spooler slot", errno).message);
  auto* slot = new (mem) spooler_slot();
  const pid_t master = ::getpid();
  spdlog::default_logger()->flush();
  auto forked = fork_process("a spooler");
  if (!forked) {
    ::munmap(mem, sizeof(spooler_slot));
    return fail(forked.err().message);
  }
  const pid_t pid = *forked;
  if (pid == 0) {
    // Keep only stdio and our end of the socket: a spooler holding other
    // spoolers' sockets would keep them from seeing the master go.
    if (theirs.get() != 3 && ::dup2(theirs.get(), 3) < 0) ::_exit(k_spooler_exit_socket);
    ::close_range(4, ~0U, 0);
    run_spooler(host, q.cfg, 3, slot, board_, master);
  }
  theirs.reset();
  if (::fcntl(ours.get(), F_SETFL, O_NONBLOCK) != 0) {
    spdlog::error("queue {}: {}", q.cfg.name, io_error("make a spooler socket non-blocking", errno).message);
  }
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = ours.get();
  if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, ours.get(), &ev) != 0) {
    // Without a watch its reports would go unread: let it go and respawn.
    spdlog::error("queue {}: {}", q.cfg.name, io_error("watch a spooler socket", errno).message);
  }
  auto p = std::make_unique<spooler_proc>();
  p->pid = pid;
  p->sock = std::move(ours);
  p->slot = slot;
  p->queue = &q;
  p->started = monotonic_ns();
  by_fd_[p->sock.get()] = p.get();
  spdlog::info("spooler {} (queue {}) started", pid, q.cfg.name);
  procs_.emplace(pid, std::move(p));
  return true;
}

void spooler_pool::retire(spooler_proc& p) {
  if (p.retiring) return;
  p.retiring = true;
  p.slot->stop.store(1);
  ::shutdown(p.sock.get(), SHUT_WR);
}

void spooler_pool::retire_all() {
  for (auto& [pid, p] : procs_) retire(*p);
}

void spooler_pool::kill_all_for_shutdown() {
  for (auto& [pid, p] : procs_) {
    p->killed_for_shutdown = true;
    if (auto killed = kill_process(pid, SIGKILL, "a spooler at shutdown_grace"); !killed) {
      spdlog::error("{}", killed.err().message);
    }
  }
}

void spooler_pool::read_reports(spooler_proc& p) {
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

void spooler_pool::on_report(spooler_proc& p, const report& r, std::int64_t now) {
  if (r.seq == k_ready_seq) {
    p.ready = true;
    spdlog::debug("spooler {} (queue {}) ready after {}ms", p.pid, p.queue->cfg.name,
                  (monotonic_ns() - p.started) / k_ms);
    return;
  }
  ++p.reports;
  count_report(p.queue->cfg.name, r);
  auto it = std::find_if(p.in_hand.begin(), p.in_hand.end(), [&](const assignment& a) { return a.seq == r.seq; });
  if (it == p.in_hand.end()) return;
  if (r.handle_ns >= 0) {
    // A plugin returned a status: whatever killed spoolers before, it is
    // not every task.
    p.queue->deaths_in_a_row = 0;
    p.queue->avg_task_ns = p.queue->avg_task_ns * 0.9 + static_cast<double>(r.handle_ns) * 0.1;
  }
  spdlog::trace("queue {}: #{} {} <- spooler {}: outcome {} due {}", p.queue->cfg.name, r.seq, it->task, p.pid,
                static_cast<int>(r.result), r.due_ns);
  p.queue->index->on_report(it->task, r, now);
  p.in_hand.erase(it);
}

bool spooler_pool::on_exit(pid_t pid, int status, bool shutting_down) {
  auto it = procs_.find(pid);
  if (it == procs_.end()) return false;
  spooler_proc& p = *it->second;
  account_exit(p, status, shutting_down);
  by_fd_.erase(p.sock.get());
  ::munmap(p.slot, sizeof(spooler_slot));
  procs_.erase(it);
  return true;
}

void spooler_pool::account_exit(spooler_proc& p, int status, bool shutting_down) {
  read_reports(p);
  queue_runtime& q = *p.queue;
  const std::uint64_t current = p.slot->current_seq.load();
  const std::string how = describe_exit(status);
  const bool clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
  std::string task_note;
  for (const auto& a : p.in_hand) {
    if (current != 0 && a.seq == current) {
      task_note = " while handling " + a.task;
      if (p.killed_for_shutdown) {
        q.index->on_returned(a.task);  // cut short by shutdown: not a try
      } else {
        q.index->owe_try(a.task, p.timed_out ? "timed out after " + format_duration(q.cfg.timeout) : "spooler " + how);
        count_death(q.cfg.name, p.timed_out ? task_outcome::timeout : task_outcome::crash);
      }
    } else {
      q.index->on_returned(a.task);  // named, never started: no try
    }
  }
  p.in_hand.clear();
  if (q.cfg.redis && board_ != nullptr) {
    // A Redis spooler holds its entries itself: the note tells the spooler
    // that takes them over which one owes a try (none after a shutdown's
    // kill: cut short, as for a directory).
    exit_note note;
    note.pid = p.pid;
    note.wait_status = status;
    note.timed_out = p.timed_out;
    if (current != 0 && !p.killed_for_shutdown) {
      note.in_task = entry_ref{p.slot->entry_priority.load(), p.slot->entry_ms.load(), p.slot->entry_seq.load()};
      count_death(q.cfg.name, p.timed_out ? task_outcome::timeout : task_outcome::crash);
    }
    board_->post(note);
  }
  const std::int64_t lived = monotonic_ns() - p.started;
  if (clean) {
    spdlog::info("spooler {} (queue {}) {}", p.pid, q.cfg.name, how);
  } else if (p.killed_for_shutdown) {
    spdlog::warn("spooler {} (queue {}) killed after shutdown_grace{}", p.pid, q.cfg.name, task_note);
  } else if (p.init_timed_out) {
    spdlog::warn("spooler {} (queue {}) killed: init() of plugin '{}' did not return within {} (init_timeout)", p.pid,
                 q.cfg.name, plugin_in_init(p), format_duration(q.cfg.init_timeout));
  } else {
    spdlog::warn("spooler {} (queue {}) {}{}", p.pid, q.cfg.name, p.timed_out ? "killed at its timeout" : how, task_note);
  }
  if (shutting_down || p.retiring || q.retired) return;
  count_restart(q.cfg.name, clean             ? restart_cause::recycle
                            : p.timed_out      ? restart_cause::timeout
                            : p.init_timed_out ? restart_cause::init_timeout
                                               : restart_cause::crash);
  if (clean) return;
  // Every run of deaths is throttled, whatever its cause (a crash in init()
  // or in every task, a hang past a timeout): the first death respawns at
  // once, the next ones pause 100 ms, doubling to 30 s, until a plugin
  // returns a status again.
  ++q.deaths_in_a_row;
  ++q.restarts;
  if (q.deaths_in_a_row < 2) return;
  const unsigned doublings = std::min(q.deaths_in_a_row - 2, 20u);
  const std::int64_t pause = std::min<std::int64_t>(k_first_pause_ns << doublings, k_max_respawn_pause_ns);
  q.respawn_at = monotonic_ns() + pause;
  const std::string when = !p.ready ? "before its plugins were ready, before taking a task"
                           : current == 0 ? "between tasks"
                                          : "in a task";
  spdlog::warn("queue {}: spooler {} died {}ms after it started, {} ({} deaths in a row): next start in {}ms",
               q.cfg.name, p.pid, lived / k_ms, when, q.deaths_in_a_row, pause / k_ms);
}

void spooler_pool::enforce_timeouts() {
  const std::int64_t mono = monotonic_ns();
  for (auto& [pid, p] : procs_) {
    if (p->timed_out || p->init_timed_out || p->killed_for_shutdown) continue;
    const auto init_timeout = to_ns(p->queue->cfg.init_timeout);
    if (!p->ready && init_timeout > 0 && mono - p->started >= init_timeout) {
      spdlog::warn("spooler {} (queue {}) is still in init() of plugin '{}' after {} (init_timeout): killing it", pid,
                   p->queue->cfg.name, plugin_in_init(*p), format_duration(p->queue->cfg.init_timeout));
      // Marked only once the signal is sent: a failed kill is tried again.
      if (auto killed = kill_process(pid, SIGKILL, "a spooler stuck in init()"); !killed) {
        spdlog::error("{}", killed.err().message);
      } else {
        p->init_timed_out = true;
      }
      continue;
    }
    const auto timeout = to_ns(p->queue->cfg.timeout);
    const std::uint64_t seq = p->slot->current_seq.load();
    if (timeout <= 0 || seq == 0 || mono - p->slot->started_ns.load() < timeout) continue;
    std::string task = "?";
    for (const auto& a : p->in_hand) {
      if (a.seq == seq) task = a.task;
    }
    spdlog::warn("spooler {} (queue {}) has run task {} past its timeout of {}: killing it", pid, p->queue->cfg.name,
                 task, format_duration(p->queue->cfg.timeout));
    if (auto killed = kill_process(pid, SIGKILL, "a spooler past its task's timeout"); !killed) {
      spdlog::error("{}", killed.err().message);
    } else {
      p->timed_out = true;
    }
  }
}

std::int64_t spooler_pool::next_deadline(std::int64_t stall_ns) const {
  std::int64_t wake = k_never;
  const std::int64_t now = monotonic_ns();
  for (const auto& [pid, p] : procs_) {
    const auto init_timeout = to_ns(p->queue->cfg.init_timeout);
    if (!p->ready && init_timeout > 0 && !p->init_timed_out) wake = std::min(wake, p->started + init_timeout);
    const std::uint64_t seq = p->slot->current_seq.load();
    if (seq == 0) {
      // Named tasks not started yet: a spooler says nothing when it starts
      // one, so look again soon, or a timeout would wait for another event.
      if (!p->in_hand.empty()) wake = std::min(wake, now + stall_ns);
      continue;
    }
    const std::int64_t started = p->slot->started_ns.load();
    if (seq != p->stalled_seq) wake = std::min(wake, started + stall_ns);
    const auto timeout = to_ns(p->queue->cfg.timeout);
    if (timeout > 0 && !p->timed_out) wake = std::min(wake, started + timeout);
  }
  return wake;
}

spooler_proc* spooler_pool::find_by_fd(int fd) {
  auto it = by_fd_.find(fd);
  return it == by_fd_.end() ? nullptr : it->second;
}

bool spooler_pool::uses(const queue_runtime* q) const {
  return std::any_of(procs_.begin(), procs_.end(), [&](const auto& kv) { return kv.second->queue == q; });
}

std::pair<std::size_t, std::size_t> spooler_pool::count(const queue_runtime* q) const {
  std::size_t alive = 0;
  std::size_t ready = 0;
  for (const auto& [pid, p] : procs_) {
    if (p->queue != q) continue;
    ++alive;
    if (p->ready) ++ready;
  }
  return {alive, ready};
}

}  // namespace spoold

// Prometheus metrics (SPEC §11, `[host] metrics`). The master counts
// outcomes, durations and restarts in memory and, at most every 100 ms when
// something changed, sends a small snapshot to the metrics process over a
// socketpair (non-blocking; a snapshot that does not fit is dropped, the next
// one carries the totals). The metrics process, forked by the master before
// the spoolers, never runs plugin code: it serves /metrics with Boost.Beast
// (per-connection deadlines, a connection cap) and reads what the master does
// not know cheaply (the failed/ count, the oldest pending task's age) from
// the directories at scrape time, bounded and cached. A slow or hostile
// client can therefore cost the metrics process, never the master's loop.
#pragma once

#include <sys/types.h>

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config.hpp"
#include "metrics_address.hpp"
#include "posix.hpp"
#include "protocol.hpp"
#include "result.hpp"
#include "spooler_board.hpp"

namespace spoold {

struct queue_runtime;
class spooler_pool;

// The outcome label of spoold_tasks_total: how a try ended, as the plugin
// chain said (a Retry that used up max_attempts is a retry: the move to
// failed/ shows in spoold_queue_failed), or how its spooler died.
enum class task_outcome : std::uint8_t { ok, retry, fail, ignore, crash, timeout };
inline constexpr std::array<std::string_view, 6> k_outcome_names = {"ok", "retry", "fail", "ignore", "crash", "timeout"};

// The cause label of spoold_spooler_restarts_total: why a spooler had to be
// replaced (recycle: it exited by itself, as after max_tasks).
enum class restart_cause : std::uint8_t { crash, timeout, init_timeout, recycle };
inline constexpr std::array<std::string_view, 4> k_cause_names = {"crash", "timeout", "init_timeout", "recycle"};

// Upper bounds of spoold_task_duration_seconds' buckets, in seconds.
inline constexpr std::array<double, 14> k_duration_buckets = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                              0.1,    0.25,  0.5,    1,     2.5,  10,    60};

// What the master counts of one queue (by name, so that a reload that
// replaces a queue's runtime keeps its counters: counters only go up).
struct queue_counters {
  std::array<std::uint64_t, k_outcome_names.size()> tasks{};
  // Not cumulative: bucket i counts durations in (bound[i-1], bound[i]],
  // the last one those above every bound.
  std::array<std::uint64_t, k_duration_buckets.size() + 1> duration_buckets{};
  double duration_sum_s = 0;
  std::array<std::uint64_t, k_cause_names.size()> restarts{};
};

// The master's counters of a queue, created on first use. Master only.
queue_counters& counters_for(const std::string& queue);
// A report from a spooler: counts the try if a plugin chain ran in it.
void count_report(const std::string& queue, const report& r);
void count_death(const std::string& queue, task_outcome how);
void count_restart(const std::string& queue, restart_cause why);

// One queue in a snapshot: the master's counters and gauges.
struct queue_snapshot {
  std::string name;
  std::string dir;        // empty for a queue a reload removed (its counters stay) and for a Redis queue
  std::string redis_key;  // a Redis queue: the key of its backlog on the spooler board
  queue_counters counters;
  std::uint64_t pending = 0;
  std::uint64_t delayed = 0;
  std::uint64_t in_flight = 0;
  // Set by the metrics process: false for a Redis queue whose backlog no
  // spooler read lately (its gauges are left out rather than wrong).
  bool counts_known = true;
};

// Both sides are one binary: native byte order, fixed-size numbers.
std::string encode_snapshot(const std::vector<queue_snapshot>& queues);
std::optional<std::vector<queue_snapshot>> decode_snapshot(std::string_view data);

// What the metrics process reads from a queue's directory (or, for a Redis
// queue, from the spooler board: no oldest age there).
struct dir_gauges {
  std::uint64_t failed = 0;
  std::optional<double> oldest_pending_age_s = 0.0;  // 0 when nothing is pending
};

// The exposition text (format 0.0.4) of a snapshot and the gauges read from
// the directories (by queue, in the snapshot's order; missing = not read).
std::string render_exposition(const std::vector<queue_snapshot>& queues, const std::vector<std::optional<dir_gauges>>& dirs);
// A label value escaped for the exposition format (\\, \" and \n).
std::string escape_label(std::string_view value);

// A listening TCP socket on the address; the error names it.
result<unique_fd> listen_on(const listen_address& a, const std::string& text);
// --check: the problem with `[host] metrics` found by binding it (and
// closing it at once); nullopt when it can be bound, or when it is in use
// and in_use_is_ours (a host runs on this config), or does not parse (the
// config's problem, reported by load_config).
std::optional<std::string> probe_metrics_address(const host_config& host, bool in_use_is_ours);

// The master's side: the listening socket, the metrics process (restarted
// if it dies) and the snapshots it is sent.
class metrics_publisher {
 public:
  // Binds the address and forks the metrics process; the error names the
  // address and why it cannot be used.
  // board: the spooler board, where the metrics process reads the backlog
  // of Redis queues (may be nullptr).
  static result<std::unique_ptr<metrics_publisher>> start(const host_config& host, const spooler_board* board);
  ~metrics_publisher();
  metrics_publisher(const metrics_publisher&) = delete;
  metrics_publisher& operator=(const metrics_publisher&) = delete;

  // Called on every turn of the master's loop: sends a snapshot when one is
  // due (at most every 100 ms, and only when it changed), else notes that
  // one is owed for next_deadline().
  void on_turn(const std::vector<std::unique_ptr<queue_runtime>>& queues);
  // The monotonic time on_turn() wants to run again; INT64_MAX if none.
  std::int64_t next_deadline() const;
  // A reaped child: false when it is not the metrics process.
  bool on_exit(pid_t pid, int status);

 private:
  metrics_publisher() = default;
  result<void> spawn();

  host_config host_;
  const spooler_board* board_ = nullptr;
  unique_fd listener_;
  unique_fd sock_;
  pid_t pid_ = -1;
  std::int64_t started_ = 0;
  std::int64_t respawn_at_ = 0;
  std::int64_t next_send_ = 0;
  bool owed_ = true;
  std::string last_sent_;
};

// The metrics process's main: serves /metrics on listen_fd with the
// snapshots read from master_fd until the master goes. Never returns.
[[noreturn]] void run_metrics_server(const host_config& host, int listen_fd, int master_fd, const spooler_board* board);

}  // namespace spoold

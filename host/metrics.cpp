#include "metrics.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <map>

#include <fmt/format.h>
#include <spoold/plugin.hpp>

#include "logging.hpp"
#include "process_status.hpp"
#include "queue_runtime.hpp"
#include "signals.hpp"

namespace spoold {

namespace {

constexpr std::int64_t k_ms = 1'000'000;
constexpr std::int64_t k_send_interval_ns = 100 * k_ms;
constexpr std::int64_t k_respawn_pause_ns = 1000 * k_ms;
constexpr std::int64_t k_never = std::numeric_limits<std::int64_t>::max();
constexpr std::uint32_t k_snapshot_magic = 0x53504d31;  // "SPM1"

// By name, in name order: the exposition lists queues the same way each time.
std::map<std::string, queue_counters, std::less<>>& registry() {
  static std::map<std::string, queue_counters, std::less<>> counters;
  return counters;
}

template <class T>
void put(std::string& out, const T& v) {
  out.append(reinterpret_cast<const char*>(&v), sizeof(v));
}
void put_string(std::string& out, std::string_view s) {
  const auto n = static_cast<std::uint16_t>(std::min<std::size_t>(s.size(), 0xffff));
  put(out, n);
  out.append(s.data(), n);
}
template <class T>
bool get(std::string_view& in, T& v) {
  if (in.size() < sizeof(v)) return false;
  std::memcpy(&v, in.data(), sizeof(v));
  in.remove_prefix(sizeof(v));
  return true;
}
bool get_string(std::string_view& in, std::string& s) {
  std::uint16_t n = 0;
  if (!get(in, n) || in.size() < n) return false;
  s.assign(in.data(), n);
  in.remove_prefix(n);
  return true;
}

std::string number(double v) { return fmt::format("{}", v); }

}  // namespace

queue_counters& counters_for(const std::string& queue) {
  auto& r = registry();
  auto it = r.find(queue);
  if (it == r.end()) it = r.emplace(queue, queue_counters{}).first;
  return it->second;
}

void count_report(const std::string& queue, const report& r) {
  if (r.seq == k_ready_seq || r.handle_ns < 0) return;  // no plugin ran (a claim that failed, an owed try)
  task_outcome o = task_outcome::retry;  // any value that is not a Status is a Retry
  switch (r.plugin_status) {
    case static_cast<std::int32_t>(Status::Ok): o = task_outcome::ok; break;
    case static_cast<std::int32_t>(Status::Fail): o = task_outcome::fail; break;
    case static_cast<std::int32_t>(Status::Ignore): o = task_outcome::ignore; break;
    default: break;
  }
  queue_counters& c = counters_for(queue);
  ++c.tasks[static_cast<std::size_t>(o)];
  const double s = static_cast<double>(r.handle_ns) / 1e9;
  const auto bucket = std::lower_bound(k_duration_buckets.begin(), k_duration_buckets.end(), s);
  ++c.duration_buckets[static_cast<std::size_t>(bucket - k_duration_buckets.begin())];
  c.duration_sum_s += s;
}

void count_death(const std::string& queue, task_outcome how) { ++counters_for(queue).tasks[static_cast<std::size_t>(how)]; }

void count_restart(const std::string& queue, restart_cause why) {
  ++counters_for(queue).restarts[static_cast<std::size_t>(why)];
}

std::string encode_snapshot(const std::vector<queue_snapshot>& queues) {
  std::string out;
  put(out, k_snapshot_magic);
  put(out, static_cast<std::uint32_t>(queues.size()));
  for (const auto& q : queues) {
    put_string(out, q.name);
    put_string(out, q.dir);
    put_string(out, q.redis_key);
    put(out, q.counters);
    put(out, q.pending);
    put(out, q.delayed);
    put(out, q.in_flight);
  }
  return out;
}

std::optional<std::vector<queue_snapshot>> decode_snapshot(std::string_view in) {
  std::uint32_t magic = 0;
  std::uint32_t n = 0;
  if (!get(in, magic) || magic != k_snapshot_magic || !get(in, n)) return std::nullopt;
  std::vector<queue_snapshot> out;
  for (std::uint32_t i = 0; i < n; ++i) {
    queue_snapshot q;
    if (!get_string(in, q.name) || !get_string(in, q.dir) || !get_string(in, q.redis_key) || !get(in, q.counters) ||
        !get(in, q.pending) ||
        !get(in, q.delayed) || !get(in, q.in_flight)) {
      return std::nullopt;
    }
    out.push_back(std::move(q));
  }
  if (!in.empty()) return std::nullopt;
  return out;
}

std::string escape_label(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string render_exposition(const std::vector<queue_snapshot>& queues,
                              const std::vector<std::optional<dir_gauges>>& dirs) {
  std::string out;
  const auto head = [&](std::string_view name, std::string_view type, std::string_view help) {
    out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
  };
  const auto label = [](const queue_snapshot& q) { return "queue=\"" + escape_label(q.name) + "\""; };

  head("spoold_up", "gauge", "1 while the host runs: this endpoint is served by its metrics process.");
  out += "spoold_up 1\n";

  head("spoold_tasks_total", "counter",
       "Tries of tasks by how they ended: the status the plugin chain returned (ok, retry, fail, ignore; a Retry "
       "that used up max_attempts counts as retry), or crash and timeout when the spooler died in the task.");
  for (const auto& q : queues) {
    for (std::size_t i = 0; i < k_outcome_names.size(); ++i) {
      out += fmt::format("spoold_tasks_total{{{},outcome=\"{}\"}} {}\n", label(q), k_outcome_names[i], q.counters.tasks[i]);
    }
  }

  head("spoold_task_duration_seconds", "histogram",
       "Time a try spent in the queue's plugin chain (tries that crashed or timed out are not included).");
  for (const auto& q : queues) {
    std::uint64_t cumulative = 0;
    for (std::size_t i = 0; i < k_duration_buckets.size(); ++i) {
      cumulative += q.counters.duration_buckets[i];
      out += fmt::format("spoold_task_duration_seconds_bucket{{{},le=\"{}\"}} {}\n", label(q),
                         number(k_duration_buckets[i]), cumulative);
    }
    cumulative += q.counters.duration_buckets.back();
    out += fmt::format("spoold_task_duration_seconds_bucket{{{},le=\"+Inf\"}} {}\n", label(q), cumulative);
    out += fmt::format("spoold_task_duration_seconds_sum{{{}}} {}\n", label(q), number(q.counters.duration_sum_s));
    out += fmt::format("spoold_task_duration_seconds_count{{{}}} {}\n", label(q), cumulative);
  }

  const auto gauge = [&](std::string_view name, std::string_view help, auto value) {
    head(name, "gauge", help);
    for (std::size_t i = 0; i < queues.size(); ++i) {
      // Removed by a reload: only its counters stay.
      if (queues[i].dir.empty() && queues[i].redis_key.empty()) continue;
      if (auto v = value(i)) out += fmt::format("{}{{{}}} {}\n", name, label(queues[i]), *v);
    }
  };
  using maybe = std::optional<std::string>;
  const auto known = [&](std::size_t i, std::uint64_t v) -> maybe {
    if (!queues[i].counts_known) return std::nullopt;
    return std::to_string(v);
  };
  gauge("spoold_queue_pending", "Tasks due and waiting for a spooler, as the master's index knows them.",
        [&](std::size_t i) -> maybe { return known(i, queues[i].pending); });
  gauge("spoold_queue_delayed", "Tasks waiting for their time (at, a retry's backoff, a busy file).",
        [&](std::size_t i) -> maybe { return known(i, queues[i].delayed); });
  gauge("spoold_queue_failed", "Tasks in the queue's failed/ folder, read at scrape time.", [&](std::size_t i) -> maybe {
    if (i >= dirs.size() || !dirs[i]) return std::nullopt;
    return std::to_string(dirs[i]->failed);
  });
  gauge("spoold_queue_oldest_pending_age_seconds",
        "Seconds since the oldest due task file (not ignored) became due, read at scrape time; 0 when none.",
        [&](std::size_t i) -> maybe {
          if (i >= dirs.size() || !dirs[i] || !dirs[i]->oldest_pending_age_s) return std::nullopt;
          return number(*dirs[i]->oldest_pending_age_s);
        });
  gauge("spoold_tasks_in_flight", "Tasks named to a spooler and not reported on yet.",
        [&](std::size_t i) -> maybe { return known(i, queues[i].in_flight); });

  head("spoold_spooler_restarts_total", "counter",
       "Spooler processes started to replace one that died (crash: a signal or a failing exit; timeout; "
       "init_timeout) or that exited by itself (recycle, as after max_tasks).");
  for (const auto& q : queues) {
    for (std::size_t i = 0; i < k_cause_names.size(); ++i) {
      out += fmt::format("spoold_spooler_restarts_total{{{},cause=\"{}\"}} {}\n", label(q), k_cause_names[i],
                         q.counters.restarts[i]);
    }
  }
  return out;
}

result<unique_fd> listen_on(const listen_address& a, const std::string& text) {
  unique_fd s(::socket(a.family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!s.valid()) return io_error("host.metrics = \"" + text + "\": create a socket", errno);
  const int one = 1;
  // A restarted host rebinds at once, whatever connections linger in TIME_WAIT.
  (void)::setsockopt(s.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_storage ss{};
  socklen_t len = 0;
  if (a.family == AF_INET) {
    auto* in = reinterpret_cast<sockaddr_in*>(&ss);
    in->sin_family = AF_INET;
    in->sin_port = htons(a.port);
    (void)::inet_pton(AF_INET, a.host.c_str(), &in->sin_addr);
    len = sizeof(sockaddr_in);
  } else {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&ss);
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(a.port);
    (void)::inet_pton(AF_INET6, a.host.c_str(), &in6->sin6_addr);
    (void)::setsockopt(s.get(), IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    len = sizeof(sockaddr_in6);
  }
  if (::bind(s.get(), reinterpret_cast<const sockaddr*>(&ss), len) != 0) {
    const int e = errno;
    return make_error("host.metrics = \"" + text + "\": cannot listen there: " + std::strerror(e) +
                          (e == EADDRINUSE ? " (another process listens on that port: pick another one)" : ""),
                      e);
  }
  if (::listen(s.get(), 128) != 0) return io_error("host.metrics = \"" + text + "\": listen", errno);
  return s;
}

std::optional<std::string> probe_metrics_address(const host_config& host, bool in_use_is_ours) {
  if (host.metrics.empty()) return std::nullopt;
  auto a = parse_listen_address(host.metrics);
  if (!a) return std::nullopt;
  auto s = listen_on(*a, host.metrics);
  if (s || (in_use_is_ours && s.err().code == EADDRINUSE)) return std::nullopt;
  return s.err().message;
}

result<std::unique_ptr<metrics_publisher>> metrics_publisher::start(const host_config& host,
                                                                    const spooler_board* board) {
  auto a = parse_listen_address(host.metrics);
  if (!a) return a.err();
  auto s = listen_on(*a, host.metrics);
  if (!s) return s.err();
  std::unique_ptr<metrics_publisher> p(new metrics_publisher());
  p->host_ = host;
  p->board_ = board;
  p->listener_ = std::move(*s);
  if (auto spawned = p->spawn(); !spawned) return spawned.err();
  spdlog::info("metrics: serving http://{}/metrics (metrics process {})", host.metrics, p->pid_);
  return p;
}

result<void> metrics_publisher::spawn() {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
    return io_error("socketpair for the metrics process", errno);
  }
  unique_fd ours(sv[0]);
  unique_fd theirs(sv[1]);
  // Room for a snapshot of many queues in one message.
  const int size = 1 << 20;
  (void)::setsockopt(ours.get(), SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
  const pid_t master = ::getpid();
  spdlog::default_logger()->flush();
  const pid_t pid = ::fork();
  if (pid < 0) return io_error("fork the metrics process", errno);
  if (pid == 0) {
    reset_signals_after_fork();
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != master) ::_exit(0);
    // Only stdio, the listening socket (3) and the master's socket (4).
    const int l = ::fcntl(listener_.get(), F_DUPFD, 100);
    const int m = ::fcntl(theirs.get(), F_DUPFD, 100);
    if (l < 0 || m < 0 || ::dup2(l, 3) < 0 || ::dup2(m, 4) < 0) ::_exit(1);
    ::close_range(5, ~0U, 0);
    run_metrics_server(host_, 3, 4, board_);
  }
  theirs.reset();
  if (::fcntl(ours.get(), F_SETFL, O_NONBLOCK) != 0) return io_error("make the metrics socket non-blocking", errno);
  sock_ = std::move(ours);
  pid_ = pid;
  started_ = monotonic_ns();
  last_sent_.clear();
  owed_ = true;
  next_send_ = 0;
  return {};
}

metrics_publisher::~metrics_publisher() {
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    (void)::waitpid(pid_, nullptr, 0);
  }
}

void metrics_publisher::on_turn(const std::vector<std::unique_ptr<queue_runtime>>& queues) {
  const std::int64_t now = monotonic_ns();
  if (pid_ < 0) {
    if (now < respawn_at_) return;
    if (auto spawned = spawn(); !spawned) {
      spdlog::error("metrics: {}: trying again in 1s", spawned.err().message);
      respawn_at_ = now + k_respawn_pause_ns;
      return;
    }
    spdlog::info("metrics: metrics process {} started", pid_);
  }
  if (now < next_send_) {
    owed_ = true;
    return;
  }
  owed_ = false;
  next_send_ = now + k_send_interval_ns;
  for (const auto& q : queues) (void)counters_for(q->cfg.name);
  std::vector<queue_snapshot> snap;
  for (const auto& [name, counters] : registry()) {
    queue_snapshot s;
    s.name = name;
    s.counters = counters;
    for (const auto& q : queues) {
      if (q->cfg.name != name) continue;
      if (!q->retired && q->cfg.redis) s.redis_key = backlog_key(q->cfg);
      if (!q->retired) s.dir = q->cfg.dir;
      if (!q->index) continue;
      const auto c = q->index->count();
      s.pending += c.pending;
      s.delayed += c.delayed;
      s.in_flight += c.in_flight;
    }
    snap.push_back(std::move(s));
  }
  std::string encoded = encode_snapshot(snap);
  if (encoded == last_sent_) return;
  if (::send(sock_.get(), encoded.data(), encoded.size(), MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
    // Full (a slow metrics process): dropped, the next one carries the totals.
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      owed_ = true;
    } else {
      spdlog::warn("metrics: {}", io_error("send a snapshot to the metrics process", errno).message);
    }
    return;
  }
  last_sent_ = std::move(encoded);
}

std::int64_t metrics_publisher::next_deadline() const {
  if (pid_ < 0) return respawn_at_;
  return owed_ ? next_send_ : k_never;
}

bool metrics_publisher::on_exit(pid_t pid, int status) {
  if (pid != pid_ || pid <= 0) return false;
  const std::int64_t now = monotonic_ns();
  const bool early = now - started_ < k_respawn_pause_ns;
  spdlog::warn("metrics process {} {}: starting a new one{}", pid, describe_exit(status), early ? " in 1s" : "");
  pid_ = -1;
  sock_.reset();
  respawn_at_ = early ? now + k_respawn_pause_ns : now;
  return true;
}

}  // namespace spoold

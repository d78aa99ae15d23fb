#include "redis_spooler.hpp"

#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <deque>
#include <optional>

#include "backoff.hpp"
#include "logging.hpp"
#include "redis_source.hpp"
#include "sandbox.hpp"
#include "spooler.hpp"
#include "spooler_process.hpp"

namespace spoold {

namespace {

using std::chrono::milliseconds;

constexpr milliseconds k_connect_timeout{2000};
constexpr milliseconds k_command_timeout{5000};
constexpr milliseconds k_max_block{500};
constexpr std::int64_t k_first_pause_ms = 100;
constexpr std::int64_t k_max_pause_ms = 5000;
constexpr std::int64_t k_streams_refresh_ms = 1000;

std::int64_t now_ms() { return now_ns() / 1'000'000; }
std::int64_t mono_ms() { return monotonic_ns() / 1'000'000; }

std::string host_name() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof(buf) - 1) != 0) return "unknown";
  return buf;
}

// The `at` field (unix seconds, as uWSGI writes it, maybe with a fraction)
// in ms, or nullopt when absent or not a number.
std::optional<std::int64_t> at_ms(const redis_task& t) {
  for (const auto& [k, v] : t.args) {
    if (k != "at") continue;
    double at = 0;
    const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), at);
    if (v.empty() || ec != std::errc() || end != v.data() + v.size()) return std::nullopt;
    return static_cast<std::int64_t>(at * 1000.0);
  }
  return std::nullopt;
}

std::string last_error(const redis_entry& e) {
  for (const auto& [k, v] : e.fields) {
    if (k == "spoold.error") return v;
  }
  return {};
}

class redis_spooler {
 public:
  redis_spooler(const host_config& host, const queue_config& queue, int socket_fd, spooler_slot* slot, pid_t master,
                plugin_chain& chain)
      : host_(host),
        queue_(queue),
        socket_(socket_fd),
        slot_(slot),
        chain_(chain),
        prefix_(host_name() + ":" + std::to_string(master) + ":"),
        source_(queue, prefix_ + std::to_string(::getpid())) {}

  int run(pid_t master_pid) {
    // Before the sandbox, which may switch user; a reconnection later is
    // not refused by it (Landlock's rules do not cover connect()).
    (void)connected(false);
    if (int code = enter_sandbox_and_report_ready(queue_, host_, master_pid, socket_); code != 0) return code;
    spdlog::debug("spooler for queue {} ready with {}, consumer {} of group {} on {}", queue_.name, chain_.text(),
                  source_.consumer(), queue_.redis->group, queue_.redis->stream);
    bool recycling = false;
    while (!stopping()) {
      if (!connected(true)) continue;
      // Recycled after max_tasks or past max_rss once the outcomes in hand
      // are applied, however long Redis takes to come back.
      if (recycling) {
        if (pending_.empty() || (flush_pending() && pending_.empty())) break;
        continue;
      }
      maintain();
      if (conn_ && !conn_->broken()) take_and_handle();
      if (queue_.max_tasks != 0 && handled_ >= queue_.max_tasks) {
        spdlog::info("spooler for queue {} handled {} tasks (max_tasks): recycling", queue_.name, handled_);
        recycling = true;
      } else if (queue_.max_rss != 0 && handled_ != rss_checked_at_) {
        rss_checked_at_ = handled_;  // once per task, not per turn of the loop
        recycling = rss_.past_max_rss(queue_, "");
      }
    }
    // Outcomes in hand reach Redis before we go, if it answers.
    if (!pending_.empty() && connected(false)) (void)flush_pending();
    if (!pending_.empty()) {
      spdlog::warn("spooler for queue {}: exiting with {} outcome(s) Redis did not take: those entries stay pending "
                   "and run again after the lease",
                   queue_.name, pending_.size());
    } else if (conn_ && !conn_->broken()) {
      source_.leave(*conn_, streams_);
    }
    return k_spooler_exit_ok;
  }

 private:
  bool stopping() const { return termination_requested() || slot_->stop.load() != 0; }

  // Waits up to ms, or less when the master closes our socket (a retire).
  void pause(std::int64_t ms) {
    pollfd p{socket_, POLLIN, 0};
    (void)::poll(&p, 1, static_cast<int>(ms));
  }

  // A usable connection, connecting when there is none: with retry, after
  // a pause of 100 ms doubling to 5 s; the outage is logged once.
  bool connected(bool with_pause) {
    if (conn_ && !conn_->broken()) return true;
    if (with_pause && pause_ms_ > 0) {
      pause(pause_ms_);
      if (stopping()) return false;
    }
    auto c = redis_conn::connect(queue_.redis->url, k_connect_timeout);
    if (c) {
      conn_ = std::move(*c);
      if (auto p = source_.prepare(*conn_); !p) {
        lost(p.err());
        return false;
      }
      if (down_since_ms_ >= 0) {
        spdlog::info("queue {}: Redis at {} answers again after {}ms; {} outcome(s) in hand are applied now",
                     queue_.name, queue_.redis->url.display(), mono_ms() - down_since_ms_, pending_.size());
      }
      down_since_ms_ = -1;
      pause_ms_ = 0;
      next_streams_ms_ = 0;
      next_takeover_ms_ = 0;
      return true;
    }
    lost(c.err());
    return false;
  }

  void lost(const error& e) {
    conn_.reset();
    pause_ms_ = pause_ms_ == 0 ? k_first_pause_ms : std::min(pause_ms_ * 2, k_max_pause_ms);
    if (down_since_ms_ < 0) {
      down_since_ms_ = mono_ms();
      spdlog::warn("queue {}: {}; reconnecting every 100ms doubling to 5s; {} outcome(s) in hand are kept", queue_.name,
                   e.message, pending_.size());
    }
  }

  // The streams of the queue every second (a new priority), and the
  // entries of dead spoolers of this host (at once) and of hosts that
  // stopped answering (after the lease), each counted as a try.
  void maintain() {
    const std::int64_t now = mono_ms();
    if (now >= next_streams_ms_) {
      auto p = source_.priorities(*conn_);
      if (!p) return lost(p.err());
      streams_ = queue_streams(queue_.redis->stream, *p);
      next_streams_ms_ = now + k_streams_refresh_ms;
    }
    if (now >= next_takeover_ms_) {
      next_takeover_ms_ = now + std::max<std::int64_t>(1000, queue_.redis->lease.count() / 4);
      auto dead = source_.take_over_dead(*conn_, streams_, prefix_);
      if (!dead) return lost(dead.err());
      for (const auto& e : *dead) count_crash(e, "a spooler of this host died holding it");
      auto expired = source_.take_over_expired(*conn_, streams_);
      if (!expired) return lost(expired.err());
      for (const auto& e : *expired) {
        count_crash(e, "not acknowledged within the lease of " + format_duration(queue_.redis->lease) +
                           ": its host stopped");
      }
    }
  }

  // The outcomes in hand, then the next entry, in one round trip.
  void take_and_handle() {
    // The last outcome, when an Ok, rides in the take itself.
    const bool fold = last_is_ok_ && !pending_.empty();
    const std::size_t sent = pending_.size() - (fold ? 1 : 0);
    std::vector<std::vector<std::string>> commands(pending_.begin(),
                                                   pending_.begin() + static_cast<std::ptrdiff_t>(sent));
    commands.push_back(fold ? source_.take_command(streams_, now_ms(), ok_stream_, ok_id_)
                            : source_.take_command(streams_, now_ms()));
    std::vector<std::vector<std::string_view>> views;
    for (const auto& c : commands) views.emplace_back(c.begin(), c.end());
    auto replies = conn_->pipeline(views, k_command_timeout);
    if (!replies) return lost(replies.err());
    if (!settle_pending(*replies, sent)) return;
    const redisReply* take = replies->back().get();
    // A take that failed keeps the folded Ok in hand (applying it twice is
    // harmless: the second XACK finds nothing).
    if (is_error(take)) return server_error("take an entry", reply_text(take));
    if (fold) {
      pending_.clear();
      last_is_ok_ = false;
    }
    std::int64_t next_due = -1;
    if (auto e = redis_source::read_take(take, next_due)) return handle(*e);
    std::int64_t block = k_max_block.count();
    if (next_due >= 0) block = std::clamp<std::int64_t>(next_due - now_ms(), 1, block);
    auto waited = source_.wait(*conn_, streams_, milliseconds(block));
    if (!waited) {
      if (conn_->broken()) return lost(waited.err());
      // A stream deleted under us (spoolctl purge --all, a FLUSHDB): the
      // next take creates it and its group again.
      const std::string& why = waited.err().message;
      if (why.find("NOGROUP") != std::string::npos || why.find("UNBLOCKED") != std::string::npos) return;
      return server_error("wait for an entry", waited.err().message);
    }
    for (const auto& e : *waited) handle(e);
  }

  // Drops from pending_ the first n outcomes, which Redis took (the first
  // replies); false when one needs the scripts loaded again (kept for the
  // next turn).
  bool settle_pending(const std::vector<redis_reply>& replies, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) {
      const redisReply* r = replies[i].get();
      if (is_error(r) && reply_text(r).rfind("NOSCRIPT", 0) == 0) {
        pending_.erase(pending_.begin(), pending_.begin() + static_cast<std::ptrdiff_t>(i));
        if (auto p = source_.prepare(*conn_); !p) lost(p.err());
        return false;
      }
      if (is_error(r)) {
        spdlog::error("queue {}: Redis refused an outcome ({}): {}", queue_.name, pending_[i][0], reply_text(r));
      }
    }
    pending_.erase(pending_.begin(), pending_.begin() + static_cast<std::ptrdiff_t>(n));
    if (pending_.empty()) last_is_ok_ = false;
    return true;
  }

  bool flush_pending() {
    std::vector<std::vector<std::string_view>> views;
    for (const auto& c : pending_) views.emplace_back(c.begin(), c.end());
    auto replies = conn_->pipeline(views, k_command_timeout);
    if (!replies) {
      lost(replies.err());
      return false;
    }
    return settle_pending(*replies, pending_.size());
  }

  void push(std::vector<std::string> command) {
    pending_.push_back(std::move(command));
    last_is_ok_ = false;
  }

  void server_error(const char* doing, const std::string& text) {
    if (text.rfind("NOSCRIPT", 0) == 0) {
      if (auto p = source_.prepare(*conn_); !p) lost(p.err());
      return;
    }
    spdlog::error("queue {}: Redis at {}: cannot {}: {}", queue_.name, queue_.redis->url.display(), doing, text);
    pause(1000);
  }

  void handle(const redis_entry& e) {
    const redis_task t = parse_entry(e);
    if (!t.malformed.empty()) {
      log_event(spdlog::level::warn,
                log_fields::about_task(t.task_id.empty() ? e.id : t.task_id, queue_.name)
                    .with_status("unparsable")
                    .with_error(t.malformed),
                "moved to " + queue_.redis->stream + ":failed");
      push(source_.fail_command(e, t.attempt, t.malformed + " (entry " + e.id + " of " + e.stream + ")"));
      return;
    }
    if (auto at = at_ms(t); at && *at > now_ms()) {  // written straight into the stream: not due yet
      push(source_.retry_command(e, t.task_id, t.attempt, last_error(e), *at));
      return;
    }
    args_.clear();
    for (const auto& [k, v] : t.args) args_.push_back({{k.data(), k.size()}, {v.data(), v.size()}});
    limit_task_cpu(queue_.sandbox);
    slot_->started_ns.store(monotonic_ns());
    slot_->current_seq.store(++seq_);
    const chain_verdict v = chain_.run(t.attempt, t.task_id, args_, t.body);
    slot_->current_seq.store(0);
    ++handled_;
    log_fields line = chain_.line(t.task_id, v, t.attempt);
    if (v.is(Status::Ok)) {
      push(source_.ok_command(e));
      last_is_ok_ = true;
      ok_stream_ = e.stream;
      ok_id_ = e.id;
      log_event(spdlog::level::info, line, "");
    } else if (v.is(Status::Ignore)) {
      push(source_.ignore_command(e));
      log_event(spdlog::level::info, line, "left unacknowledged, not offered again");
    } else {
      finish(e, t, v.error, v.is(Status::Fail), line);
    }
  }

  // Counts a try that did not succeed: failed stream at once or after
  // max_attempts, otherwise delayed by the backoff.
  void finish(const redis_entry& e, const redis_task& t, std::string reason, bool fail_now, log_fields& line) {
    const unsigned tries = t.attempt + 1;
    const bool give_up = fail_now || tries >= queue_.max_attempts;
    if (give_up && !fail_now) {
      reason += " (gave up after " + std::to_string(tries) + " of max_attempts " + std::to_string(queue_.max_attempts) + ")";
    }
    line.error = reason;
    if (give_up) {
      push(source_.fail_command(e, tries, reason));
      log_event(spdlog::level::warn, line, "moved to " + queue_.redis->stream + ":failed");
      return;
    }
    const duration delay = retry_delay(tries, queue_.backoff, queue_.backoff_max, random_jitter());
    push(source_.retry_command(e, t.task_id, tries, reason, now_ms() + delay.count()));
    const std::string in = format_duration(delay);
    line.next_try_in = in;
    log_event(spdlog::level::info, line, "");
  }

  // An entry taken over from a dead consumer: its try is counted, and it
  // runs again only after the backoff (or is failed).
  void count_crash(const redis_entry& e, const std::string& why) {
    auto ignored = source_.is_ignored(*conn_, e);
    if (!ignored) return lost(ignored.err());
    if (*ignored) return;  // no plugin took it: it stays, no try
    const redis_task t = parse_entry(e);
    if (!t.malformed.empty()) return handle(e);
    log_fields line = log_fields::about_task(t.task_id, queue_.name).with_status("crash").with_attempt(t.attempt);
    line.plugin = chain_.text();
    finish(e, t, why, false, line);
  }

  const host_config& host_;
  const queue_config& queue_;
  int socket_;
  spooler_slot* slot_;
  plugin_chain& chain_;
  std::string prefix_;  // "<host>:<master pid>:", the consumers of this host's spoolers
  redis_source source_;
  std::optional<redis_conn> conn_;
  std::vector<std::string> streams_;
  std::deque<std::vector<std::string>> pending_;  // outcome commands not yet taken by Redis
  bool last_is_ok_ = false;  // pending_.back() is the Ok of ok_stream_/ok_id_
  std::string ok_stream_;
  std::string ok_id_;
  std::vector<spoold_arg> args_;
  std::uint64_t seq_ = 0;
  unsigned handled_ = 0;
  unsigned rss_checked_at_ = 0;
  resident_set_reader rss_;  // opened before a sandbox hides /proc
  std::int64_t pause_ms_ = 0;
  std::int64_t down_since_ms_ = -1;
  std::int64_t next_streams_ms_ = 0;
  std::int64_t next_takeover_ms_ = 0;
};

}  // namespace

int run_redis_spooler(const host_config& host, const queue_config& queue, int socket_fd, spooler_slot* slot,
                      pid_t master_pid, plugin_chain& chain) {
  // Never destroyed, like the directory spooler: _exit() ends the process.
  auto* s = new redis_spooler(host, queue, socket_fd, slot, master_pid, chain);
  return s->run(master_pid);
}

}  // namespace spoold

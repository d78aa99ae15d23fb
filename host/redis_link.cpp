#include "redis_link.hpp"

#include <poll.h>

#include <algorithm>
#include <iterator>

#include "logging.hpp"
#include "posix.hpp"
#include "spooler_process.hpp"

namespace spoold {

namespace {

using std::chrono::milliseconds;

constexpr milliseconds k_connect_timeout{2000};
constexpr std::int64_t k_first_pause_ms = 100;
constexpr std::int64_t k_max_pause_ms = 5000;


std::vector<std::vector<std::string_view>> views_of(const std::deque<std::vector<std::string>>& commands) {
  std::vector<std::vector<std::string_view>> out;
  out.reserve(commands.size());
  for (const auto& c : commands) out.emplace_back(c.begin(), c.end());
  return out;
}

}  // namespace

redis_link::redis_link(const queue_config& queue, redis_source& source, spooler_board* board, int socket_fd,
                       const spooler_slot* slot)
    : queue_(queue), source_(source), board_(board), socket_(socket_fd), slot_(slot) {}

bool redis_link::stopping() const { return told_to_stop(*slot_); }

void redis_link::pause(std::int64_t ms) {
  pollfd p{socket_, POLLIN, 0};
  (void)::poll(&p, 1, static_cast<int>(ms));
}


// A usable connection, connecting when there is none: with retry, after a
// pause of 100 ms doubling to 5 s.
bool redis_link::connected(bool with_pause) {
  if (conn_ && !conn_->broken()) return true;
  if (conn_) lost(make_error("Redis at " + queue_.redis->url.display() + ": the connection broke"));
  if (with_pause && pause_ms_ > 0) {
    pause(pause_ms_);
    if (stopping()) return false;
  }
  auto c = redis_conn::connect(queue_.redis->url, k_connect_timeout);
  if (!c) {
    unreachable(c.err());
    return false;
  }
  conn_ = std::move(*c);
  if (auto p = source_.prepare(*conn_); !p) {
    unreachable(p.err());
    return false;
  }
  if (down_since_ms_ >= 0 && (board_ == nullptr || board_->report_up(queue_.redis->url.display()))) {
    spdlog::info("queue {}: Redis at {} answers again after {}ms; the outcomes in hand ({} in this spooler) are "
                 "applied now",
                 queue_.name, queue_.redis->url.display(), monotonic_ms() - down_since_ms_, pending_.size());
  }
  down_since_ms_ = -1;
  pause_ms_ = 0;
  connected_at_ms_ = monotonic_ms();
  send_pending();
  return conn_.has_value();
}

void redis_link::lost(const error& e) {
  if (monotonic_ms() - connected_at_ms_ < 1000) return unreachable(e);
  drop_connection();
}

// Written, maybe applied, maybe not: sent again, which is harmless (every
// outcome script acknowledges first and does nothing more when the entry
// was no longer pending).
void redis_link::drop_connection() {
  conn_.reset();
  pending_.insert(pending_.begin(), std::make_move_iterator(in_flight_.begin()),
                  std::make_move_iterator(in_flight_.end()));
  in_flight_.clear();
}

// The server cannot be reached: retried after a pause, 100 ms doubling to
// 5 s. The host logs the outage once (spooler_board), not once per spooler.
void redis_link::unreachable(const error& e) {
  drop_connection();
  pause_ms_ = pause_ms_ == 0 ? k_first_pause_ms : std::min(pause_ms_ * 2, k_max_pause_ms);
  if (down_since_ms_ >= 0) return;
  down_since_ms_ = monotonic_ms();
  if (board_ == nullptr || board_->report_down(queue_.redis->url.display(), now_ms())) {
    spdlog::warn("queue {}: {}; reconnecting every 100ms doubling to 5s; the outcomes in hand ({} in this spooler) "
                 "are kept (logged once for this host)",
                 queue_.name, e.message, pending_.size());
  } else {
    spdlog::debug("queue {}: {}; another spooler of this host logged the outage", queue_.name, e.message);
  }
}


// An outcome is written at once, its reply read with the next take: if
// this spooler dies in its next task, Redis has it.
void redis_link::push(std::vector<std::string> command) {
  pending_.push_back(std::move(command));
  send_pending();
}

void redis_link::send_pending() {
  if (pending_.empty() || !conn_ || conn_->broken()) return;
  if (auto s = conn_->send(views_of(pending_), k_redis_command_timeout); !s) return lost(s.err());
  std::move(pending_.begin(), pending_.end(), std::back_inserter(in_flight_));
  pending_.clear();
}

// Reads the replies of the first n commands in flight; false when one
// needs the scripts loaded again (that one and the ones after it are sent
// again).
bool redis_link::settle(const std::vector<redis_reply>& replies, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) {
    const redisReply* r = replies[i].get();
    if (is_error(r) && reply_text(r).rfind("NOSCRIPT", 0) == 0) {
      in_flight_.erase(in_flight_.begin(), in_flight_.begin() + static_cast<std::ptrdiff_t>(i));
      pending_.insert(pending_.begin(), std::make_move_iterator(in_flight_.begin()),
                      std::make_move_iterator(in_flight_.begin() + static_cast<std::ptrdiff_t>(n - i)));
      in_flight_.erase(in_flight_.begin(), in_flight_.begin() + static_cast<std::ptrdiff_t>(n - i));
      if (auto p = source_.prepare(*conn_); !p) {
        lost(p.err());
        return false;
      }
      send_pending();
      return false;
    }
    if (is_error(r)) {
      spdlog::error("queue {}: Redis refused an outcome ({}): {}", queue_.name, in_flight_[i][0], reply_text(r));
    }
  }
  in_flight_.erase(in_flight_.begin(), in_flight_.begin() + static_cast<std::ptrdiff_t>(n));
  return true;
}

bool redis_link::flush() {
  send_pending();
  if (!conn_) return false;
  const std::size_t n = in_flight_.size();
  if (n == 0) return true;
  auto replies = conn_->receive(n, k_redis_command_timeout);
  if (!replies) {
    lost(replies.err());
    return false;
  }
  return settle(*replies, n);
}

void redis_link::server_error(const char* doing, const std::string& text) {
  if (text.rfind("NOSCRIPT", 0) == 0) {
    if (auto p = source_.prepare(*conn_); !p) lost(p.err());
    return;
  }
  spdlog::error("queue {}: Redis at {}: cannot {}: {}", queue_.name, queue_.redis->url.display(), doing, text);
  pause(1000);
}


std::optional<redis_reply> redis_link::call_after_outcomes(const std::vector<std::string>& command) {
  const std::size_t sent = in_flight_.size();
  if (auto s = conn_->send({std::vector<std::string_view>(command.begin(), command.end())}, k_redis_command_timeout); !s) {
    lost(s.err());
    return std::nullopt;
  }
  auto replies = conn_->receive(sent + 1, k_redis_command_timeout);
  if (!replies) {
    lost(replies.err());
    return std::nullopt;
  }
  if (!settle(*replies, sent)) return std::nullopt;
  return std::move(replies->back());
}

}  // namespace spoold

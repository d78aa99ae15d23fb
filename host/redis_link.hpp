// A Redis spooler's connection and the outcomes on their way to Redis.
// An outcome is written as its task ends, without waiting for the reply
// (read before the next command that needs its own reply), so that Redis
// has it before the next task starts and the spooler never waits between
// two tasks of a batch. While the server is unreachable the outcomes are
// kept, and written again when it is back: harmless, since every outcome
// script acknowledges first and does nothing more when the entry was no
// longer pending. The host logs an outage once (spooler_board), not once
// per spooler.
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <vector>

#include "config.hpp"
#include "protocol.hpp"
#include "redis_conn.hpp"
#include "redis_source.hpp"
#include "spooler_board.hpp"

namespace spoold {

class redis_link {
 public:
  // socket_fd: the spooler's socket to the master, whose closing (a
  // retire) cuts a pause short.
  redis_link(const queue_config& queue, redis_source& source, spooler_board* board, int socket_fd,
             const spooler_slot* slot);

  // A usable connection, connecting (and loading the scripts) when there is
  // none; with_pause: after the pause an outage has reached (100 ms
  // doubling to 5 s). Writes the outcomes kept meanwhile.
  bool connected(bool with_pause);
  bool up() const { return conn_.has_value() && !conn_->broken(); }
  // The connection, for a command that needs its reply; only when up() and
  // nothing is in flight (see flush()).
  redis_conn& conn() { return *conn_; }

  // The connection broke or a command on it failed: one reconnection at
  // once (a restarted server, a connection the server closed), an outage
  // only if that fails too, or if the connection was not a second old.
  void lost(const error& e);
  // A reply of the server that is an error: scripts loaded again after a
  // NOSCRIPT, otherwise logged and a second's pause.
  void server_error(const char* doing, const std::string& text);

  // Writes an outcome now when the server is up, keeps it otherwise.
  void push(std::vector<std::string> command);
  // Reads the replies of every outcome in flight; false when the link
  // broke, or outcomes had to be written again (scripts reloaded).
  bool flush();
  // Sends command after the outcomes in flight and returns its reply, read
  // after theirs: one round trip. nullopt when the link broke or outcomes
  // had to be written again.
  std::optional<redis_reply> call_after_outcomes(const std::vector<std::string>& command);

  // Outcomes not yet taken by Redis (kept or in flight).
  std::size_t outcomes_on_their_way() const { return pending_.size() + in_flight_.size(); }

  // Waits up to ms, or less when the master closes our socket.
  void pause(std::int64_t ms);

 private:
  bool stopping() const;
  void drop_connection();
  void unreachable(const error& e);
  void send_pending();
  bool settle(const std::vector<redis_reply>& replies, std::size_t n);

  const queue_config& queue_;
  redis_source& source_;
  spooler_board* board_;
  int socket_;
  const spooler_slot* slot_;
  std::optional<redis_conn> conn_;
  std::deque<std::vector<std::string>> pending_;    // outcome commands not yet written
  std::deque<std::vector<std::string>> in_flight_;  // written, their replies not read yet
  std::int64_t pause_ms_ = 0;
  std::int64_t down_since_ms_ = -1;
  std::int64_t connected_at_ms_ = 0;
};

}  // namespace spoold

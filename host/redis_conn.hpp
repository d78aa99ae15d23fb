// One blocking connection to a Redis server (hiredis), for a spooler of a
// Redis queue, --check and spoolctl; never used by the master, which must
// not wait on a server. Arguments go binary-safe (redisCommandArgv).
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "redis_url.hpp"
#include "result.hpp"

struct redisContext;
struct redisReply;

namespace spoold {

struct redis_reply_free {
  void operator()(redisReply* r) const;
};
using redis_reply = std::unique_ptr<redisReply, redis_reply_free>;

// The error code of a connection that failed or broke (as opposed to a
// refused password or a bad database): try again later.
inline constexpr int k_redis_unreachable = -1000;

// How long a command may take before the connection is given up (a
// blocking read waits its BLOCK time on top).
inline constexpr std::chrono::milliseconds k_redis_command_timeout{5000};

class redis_conn {
 public:
  // Connects within timeout, then AUTH (when the URL has a password) and
  // SELECT; an error names the server and says what to do.
  static result<redis_conn> connect(const redis_url& url, std::chrono::milliseconds timeout);

  // Sends one command and waits for its reply at most timeout. An error is
  // the connection failing (it is then broken() and must be replaced); an
  // error reply of the server (-ERR, -WRONGTYPE) is a reply.
  result<redis_reply> command(const std::vector<std::string_view>& argv, std::chrono::milliseconds timeout);
  // The same for several commands in one round trip: one reply each, in order.
  result<std::vector<redis_reply>> pipeline(const std::vector<std::vector<std::string_view>>& commands,
                                            std::chrono::milliseconds timeout);
  // Writes commands without waiting for their replies (their order kept):
  // a spooler's outcomes reach Redis while the next task runs. receive()
  // reads replies of earlier sends, in order.
  result<void> send(const std::vector<std::vector<std::string_view>>& commands, std::chrono::milliseconds timeout);
  result<std::vector<redis_reply>> receive(std::size_t n, std::chrono::milliseconds timeout);
  bool broken() const;
  const redis_url& url() const { return url_; }

  redis_conn(redis_conn&&) noexcept;
  redis_conn& operator=(redis_conn&&) noexcept;
  ~redis_conn();

 private:
  redis_conn(redisContext* c, redis_url url) : c_(c), url_(std::move(url)) {}
  error transport_error(const std::string& doing);
  bool set_timeout(std::chrono::milliseconds timeout);
  redisContext* c_ = nullptr;
  redis_url url_;
  std::chrono::milliseconds timeout_{-1};  // the one set on the socket; -1: none yet
};

// Reply helpers: nullptr-safe views of a reply's parts.
bool is_error(const redisReply* r);
std::string reply_text(const redisReply* r);  // a string, status or error reply; "" otherwise
long long reply_integer(const redisReply* r);  // 0 unless an integer reply
std::size_t reply_size(const redisReply* r);   // elements of an array, 0 otherwise
const redisReply* reply_at(const redisReply* r, std::size_t i);

// What --check and the start say of a Redis queue's server: nothing when it
// answers, the password is accepted and its keys have the expected types
// (the stream and its failed stream are streams or absent); otherwise one
// problem per line, each naming the queue. unreachable: the one problem is
// that the server did not answer (a start only warns of it: spoolers
// connect when it is back).
struct redis_probe {
  std::vector<std::string> problems;
  bool unreachable = false;
};
redis_probe probe_redis_queue(const std::string& queue, const redis_url& url, const std::string& stream,
                                           std::chrono::milliseconds timeout);

}  // namespace spoold

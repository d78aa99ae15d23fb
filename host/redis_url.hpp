// Where a Redis queue's server is (SPEC §7, url): parsed once when the
// config is read, so that a bad URL is a problem at file:line:col and the
// spoolers, --check and spoolctl connect the same way.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace spoold {

// Either a TCP host and port or a unix socket path, a database number and
// an optional password (AUTH). Accepted forms:
//   redis://[[user]:password@]host[:port][/db]   (port 6379, db 0 by default)
//   unix:///path/to/redis.sock[?db=N][&password=P]
// The user part of redis:// is accepted only empty or "default" (Redis 6's
// default user): ACL users are not supported.
struct redis_url {
  std::string host;         // empty for a unix socket
  unsigned port = 6379;
  std::string socket_path;  // absolute, for unix://
  unsigned db = 0;
  std::string password;     // empty: no AUTH

  // The server without the password, for log lines and errors:
  // "127.0.0.1:6379/0" or "unix:/run/redis.sock?db=0".
  std::string display() const;
};

// The parsed URL, or nullopt with why set to what is wrong and what is expected.
std::optional<redis_url> parse_redis_url(std::string_view text, std::string& why);

}  // namespace spoold

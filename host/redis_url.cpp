#include "redis_url.hpp"

#include <charconv>

namespace spoold {

namespace {

bool parse_number(std::string_view s, unsigned max, unsigned& out) {
  if (s.empty()) return false;
  unsigned v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || v > max) return false;
  out = v;
  return true;
}

// "%41" -> "A", so that a password may hold '@', ':' or '/'.
bool percent_decode(std::string_view s, std::string& out) {
  out.clear();
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out.push_back(s[i]);
      continue;
    }
    unsigned v = 0;
    if (i + 2 >= s.size()) return false;
    const auto [end, ec] = std::from_chars(s.data() + i + 1, s.data() + i + 3, v, 16);
    if (ec != std::errc() || end != s.data() + i + 3) return false;
    out.push_back(static_cast<char>(v));
    i += 2;
  }
  return true;
}

constexpr unsigned k_max_db = 1u << 20;

}  // namespace

std::string redis_url::display() const {
  if (!socket_path.empty()) return "unix:" + socket_path + "?db=" + std::to_string(db);
  return host + ":" + std::to_string(port) + "/" + std::to_string(db);
}

std::optional<redis_url> parse_redis_url(std::string_view text, std::string& why) {
  constexpr std::string_view tcp = "redis://";
  constexpr std::string_view unix_scheme = "unix://";
  redis_url u;
  if (text.substr(0, unix_scheme.size()) == unix_scheme) {
    std::string_view rest = text.substr(unix_scheme.size());
    std::string_view query;
    if (auto q = rest.find('?'); q != std::string_view::npos) {
      query = rest.substr(q + 1);
      rest = rest.substr(0, q);
    }
    if (rest.empty() || rest.front() != '/') {
      why = "a unix socket URL needs an absolute path: unix:///path/to/redis.sock[?db=N]";
      return std::nullopt;
    }
    if (!percent_decode(rest, u.socket_path)) {
      why = "a bad %-escape in the socket path";
      return std::nullopt;
    }
    while (!query.empty()) {
      const auto amp = query.find('&');
      const std::string_view item = query.substr(0, amp);
      query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
      const auto eq = item.find('=');
      const std::string_view key = item.substr(0, eq);
      const std::string_view value = eq == std::string_view::npos ? std::string_view() : item.substr(eq + 1);
      if (key == "db") {
        if (!parse_number(value, k_max_db, u.db)) {
          why = "db=" + std::string(value) + " is not a database number";
          return std::nullopt;
        }
      } else if (key == "password") {
        if (!percent_decode(value, u.password)) {
          why = "a bad %-escape in the password";
          return std::nullopt;
        }
      } else {
        why = "unknown parameter '" + std::string(key) + "': a unix socket URL takes db and password";
        return std::nullopt;
      }
    }
    return u;
  }
  if (text.substr(0, tcp.size()) != tcp) {
    why = "expected redis://[:password@]host[:port][/db] or unix:///path/to/redis.sock[?db=N&password=P]";
    return std::nullopt;
  }
  std::string_view rest = text.substr(tcp.size());
  std::string_view path;
  if (auto slash = rest.find('/'); slash != std::string_view::npos) {
    path = rest.substr(slash + 1);
    rest = rest.substr(0, slash);
  }
  if (auto at = rest.rfind('@'); at != std::string_view::npos) {
    const std::string_view userinfo = rest.substr(0, at);
    rest = rest.substr(at + 1);
    const auto colon = userinfo.find(':');
    const std::string_view user = userinfo.substr(0, colon);
    if (!user.empty() && user != "default") {
      why = "user '" + std::string(user) + "': only the password is supported (redis://:password@host)";
      return std::nullopt;
    }
    if (colon == std::string_view::npos || !percent_decode(userinfo.substr(colon + 1), u.password)) {
      why = "expected :password@ before the host (a bad %-escape or no ':')";
      return std::nullopt;
    }
  }
  std::string_view port;
  if (!rest.empty() && rest.front() == '[') {
    const auto close = rest.find(']');
    if (close == std::string_view::npos) {
      why = "an IPv6 address in [ ] has no ']'";
      return std::nullopt;
    }
    u.host = std::string(rest.substr(1, close - 1));
    rest = rest.substr(close + 1);
    if (!rest.empty() && rest.front() == ':') port = rest.substr(1);
    else if (!rest.empty()) {
      why = "expected :port after ]";
      return std::nullopt;
    }
  } else if (auto colon = rest.find(':'); colon != std::string_view::npos) {
    u.host = std::string(rest.substr(0, colon));
    port = rest.substr(colon + 1);
  } else {
    u.host = std::string(rest);
  }
  if (u.host.empty()) {
    why = "no host: expected redis://host[:port][/db]";
    return std::nullopt;
  }
  if (!port.empty() || rest.find(':') != std::string_view::npos) {
    if (!parse_number(port, 65535, u.port) || u.port == 0) {
      why = "port '" + std::string(port) + "' is not a number from 1 to 65535";
      return std::nullopt;
    }
  }
  if (!path.empty() && !parse_number(path, k_max_db, u.db)) {
    why = "'/" + std::string(path) + "' is not a database number";
    return std::nullopt;
  }
  return u;
}

}  // namespace spoold

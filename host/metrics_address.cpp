#include "metrics_address.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>

namespace spoold {

result<listen_address> parse_listen_address(const std::string& text) {
  const auto bad = [&](const std::string& why) {
    return make_error("host.metrics = \"" + text + "\": " + why +
                      " (write a numeric address and a port, such as \"127.0.0.1:9464\" or \"[::1]:9464\")");
  };
  const auto colon = text.rfind(':');
  if (colon == std::string::npos) return bad("no port");
  listen_address a;
  std::string host = text.substr(0, colon);
  const std::string port = text.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
    a.family = AF_INET6;
  } else if (host.find(':') != std::string::npos) {
    return bad("an IPv6 address needs brackets");
  } else {
    a.family = AF_INET;
  }
  unsigned char buf[sizeof(in6_addr)];
  if (host.empty() || ::inet_pton(a.family, host.c_str(), buf) != 1) {
    return bad("\"" + host + "\" is not a numeric " + (a.family == AF_INET ? "IPv4" : "IPv6") + " address");
  }
  if (port.empty() || port.size() > 5 || !std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return bad("port \"" + port + "\" is not a number");
  }
  const long p = std::stol(port);
  if (p < 1 || p > 65535) return bad("port " + port + " is out of range (1 to 65535)");
  a.host = host;
  a.port = static_cast<std::uint16_t>(p);
  return a;
}

}  // namespace spoold

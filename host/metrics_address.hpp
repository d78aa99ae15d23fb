// The address of `[host] metrics`, parsed apart from the server so that the
// config library (which spoolctl links) can check it.
#pragma once

#include <cstdint>
#include <string>

#include "result.hpp"

namespace spoold {

// "127.0.0.1:9464", "[::1]:9464", "0.0.0.0:9464": a numeric address and a
// port from 1 to 65535; the message says what is wrong with it.
struct listen_address {
  int family = 0;  // AF_INET or AF_INET6
  std::string host;
  std::uint16_t port = 0;
};
result<listen_address> parse_listen_address(const std::string& text);

}  // namespace spoold

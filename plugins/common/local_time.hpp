// The timestamp format of the shipped plugins' text logs.
#pragma once

#include <ctime>
#include <string>

namespace spoold::plugins {

// The current local time as "YYYY-MM-DD HH:MM:SS" (the uWSGI tutorial's
// format), in the TZ of the spooler process.
inline std::string local_time_now() {
  const std::time_t now = std::time(nullptr);
  std::tm parts{};
  // localtime_r, unlike localtime, is safe if the host logs from threads;
  // it does not re-read TZ, which the plugins' init() does with tzset().
  if (::localtime_r(&now, &parts) == nullptr) return "0000-00-00 00:00:00";
  char text[32];
  const std::size_t n = std::strftime(text, sizeof text, "%Y-%m-%d %H:%M:%S", &parts);
  return std::string(text, n);
}

}  // namespace spoold::plugins

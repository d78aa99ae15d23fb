// One logger for the host and its spoolers, on stderr, in text or JSON
// lines. Each process writes whole lines, so lines from the master and its
// spoolers do not interleave mid-line.
#pragma once

#include <spdlog/spdlog.h>

#include <string>

namespace spoold {

// Installs the default spdlog logger. role is "master", "spooler", "check".
void setup_logging(const std::string& level, const std::string& format, const std::string& role);

// Quotes a value for a log line when it has spaces or quotes in it.
std::string log_quote(std::string_view text);

}  // namespace spoold

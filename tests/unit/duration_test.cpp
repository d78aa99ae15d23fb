// Durations in the config: "250ms", "30s", "5m", "1h", a bare "0".
#include "duration.hpp"

#include <catch2/catch.hpp>
#include <cstdint>
#include <string>

using spoold::format_duration;
using spoold::parse_duration;

namespace {
// As text, so that a failure shows the value: "none" or the milliseconds.
std::string parsed(std::string_view text) {
  const auto d = parse_duration(text);
  return d ? std::to_string(d->count()) : std::string("none");
}
}  // namespace

TEST_CASE("parse_duration: a whole number and a unit", "[duration]") {
  CHECK(parsed("250ms") == "250");
  CHECK(parsed("1ms") == "1");
  CHECK(parsed("30s") == "30000");
  CHECK(parsed("1s") == "1000");
  CHECK(parsed("5m") == "300000");
  CHECK(parsed("1h") == "3600000");
  CHECK(parsed("24h") == "86400000");
  CHECK(parsed("0") == "0");
  CHECK(parsed("0s") == "0");
  CHECK(parsed("0ms") == "0");
  CHECK(parsed("0h") == "0");
  CHECK(parsed("010s") == "10000");
}

TEST_CASE("parse_duration: anything else is refused", "[duration]") {
  for (const char* text : {"", "s", "ms", "10", "1", "-1s", "+1s", "1.5s", "1e3ms", "10 s", " 10s", "10s ",
                           "10 seconds", "10sec", "5x", "10S", "1H", "1d", "1w", "1m30s", "0x10s", "s10", "10ms5",
                           "\xff", "-1", "-1ms"}) {
    INFO("'" << text << "'");
    CHECK(parsed(text) == "none");
  }
  CHECK(parsed(std::string_view("10\0s", 4)) == "none");
}

TEST_CASE("parse_duration: values that would overflow are refused", "[duration]") {
  // The limit is 2^50 ms (35 700 years).
  CHECK(parsed("1125899906842624ms") == "1125899906842624");
  CHECK(parsed("1125899906842625ms") == "none");
  CHECK(parsed("312749974h") == std::to_string(std::int64_t{312749974} * 3600000));
  CHECK(parsed("312749975h") == "none");
  CHECK(parsed("9223372036854775807ms") == "none");
  CHECK(parsed("9223372036854775808ms") == "none");
  CHECK(parsed("99999999999999999999999s") == "none");
  CHECK(parsed("2562047788015216h") == "none");
}

TEST_CASE("format_duration: the shortest exact text", "[duration]") {
  using spoold::duration;
  CHECK(format_duration(duration(0)) == "0s");
  CHECK(format_duration(duration(1)) == "1ms");
  CHECK(format_duration(duration(250)) == "250ms");
  CHECK(format_duration(duration(1500)) == "1500ms");
  CHECK(format_duration(duration(1000)) == "1s");
  CHECK(format_duration(duration(30000)) == "30s");
  CHECK(format_duration(duration(90000)) == "90s");
  CHECK(format_duration(duration(60000)) == "1m");
  CHECK(format_duration(duration(600000)) == "10m");
  CHECK(format_duration(duration(5400000)) == "90m");
  CHECK(format_duration(duration(3600000)) == "1h");
  CHECK(format_duration(duration(86400000)) == "24h");
}

TEST_CASE("format_duration and parse_duration round-trip", "[duration]") {
  for (std::int64_t ms : {std::int64_t{0}, std::int64_t{1}, std::int64_t{999}, std::int64_t{1000}, std::int64_t{1001},
                          std::int64_t{59999}, std::int64_t{60000}, std::int64_t{61000}, std::int64_t{3599999},
                          std::int64_t{3600000}, std::int64_t{7200000}, std::int64_t{1} << 50}) {
    const spoold::duration d(ms);
    const std::string text = format_duration(d);
    INFO(ms << " -> " << text);
    CHECK(parsed(text) == std::to_string(ms));
  }
  for (const char* text : {"250ms", "30s", "5m", "1h", "0"}) {
    const auto d = parse_duration(text);
    REQUIRE(d.has_value());
    CHECK(parse_duration(format_duration(*d)) == d);
  }
}

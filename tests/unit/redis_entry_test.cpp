// A Redis queue's entries (host/redis_source.hpp): what a spooler hands the
// plugins, and the reason a malformed entry goes to the failed stream.
#include <catch2/catch.hpp>
#include <string>

#include "redis_source.hpp"

using Catch::Contains;

namespace {
spoold::redis_entry entry(std::vector<std::pair<std::string, std::string>> fields) {
  return spoold::redis_entry{"s", "1-0", std::move(fields)};
}
}  // namespace

TEST_CASE("redis entry: args in order, the body and the attempt", "[redis]") {
  const auto e = entry({{"spoold.id", "uwsgi_spoolfile_on_h_1_2_3_4_5"},
                        {"to", "a@b"},
                        {"to", "c\0d"},
                        {"spoold.body", std::string("x\0y", 3)},
                        {"spoold.attempt", "2"}});
  const auto t = spoold::parse_entry(e);
  REQUIRE(t.malformed.empty());
  CHECK(t.task_id == "uwsgi_spoolfile_on_h_1_2_3_4_5");
  CHECK(t.attempt == 2);
  CHECK(t.body == std::string("x\0y", 3));
  REQUIRE(t.args.size() == 3);  // spoold.id and spoold.body are not args
  CHECK(t.args[0].first == "to");
  CHECK(t.args[1].second == "c\0d");
  CHECK(t.args[2].first == "spoold.attempt");
}

TEST_CASE("redis entry: malformed entries say why", "[redis]") {
  CHECK_THAT(spoold::parse_entry(entry({{"a", "b"}})).malformed, Contains("no spoold.id"));
  CHECK_THAT(spoold::parse_entry(entry({{"spoold.id", "../x"}})).malformed, Contains("spoold.id must be"));
  CHECK_THAT(spoold::parse_entry(entry({{"spoold.id", "t"}, {"spoold.attempt", "two"}})).malformed,
             Contains("spoold.attempt = \"two\" is not a number"));
  CHECK_THAT(spoold::parse_entry(entry({{"spoold.id", "t"}, {"k", std::string(70000, 'v')}})).malformed,
             Contains("over the 65535"));
  CHECK_THAT(spoold::parse_entry(entry({{"spoold.id", "t"}, {"", "v"}})).malformed, Contains("empty name"));
  std::vector<std::pair<std::string, std::string>> many(spoold::k_max_entry_fields + 1, {"k", "v"});
  CHECK_THAT(spoold::parse_entry(entry(many)).malformed, Contains("fields, more than"));
}

TEST_CASE("redis entry: streams are served lowest priority number first, the plain stream last", "[redis]") {
  CHECK(spoold::queue_streams("q", {0, 3, 10}) == std::vector<std::string>{"q:p0", "q:p3", "q:p10", "q"});
  CHECK(spoold::stream_for_priority("q", "") == "q");
  CHECK(spoold::stream_for_priority("q", "7") == "q:p7");
}

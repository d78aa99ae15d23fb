// The metrics' pure parts: label escaping, the snapshot the master sends
// the metrics process, the exposition text, and the `[host] metrics`
// address. The endpoint itself is tested end to end (tests/e2e/test_metrics.py).
#include "metrics.hpp"

#include <sys/socket.h>

#include <catch2/catch.hpp>
#include <string>

using Catch::Contains;

TEST_CASE("label values escape backslash, quote and newline only") {
  CHECK(spoold::escape_label("plain-q_1.x") == "plain-q_1.x");
  CHECK(spoold::escape_label("a\\b\"c\nd") == "a\\\\b\\\"c\\nd");
  CHECK(spoold::escape_label("tab\there") == "tab\there");
}

TEST_CASE("a snapshot survives the trip to the metrics process, and a damaged one is refused") {
  spoold::queue_snapshot q;
  q.name = "mail";
  q.dir = "/srv/spool/mail";
  q.counters.tasks[static_cast<std::size_t>(spoold::task_outcome::fail)] = 7;
  q.counters.duration_buckets[3] = 2;
  q.counters.duration_sum_s = 0.25;
  q.counters.restarts[static_cast<std::size_t>(spoold::restart_cause::timeout)] = 1;
  q.pending = 3;
  q.delayed = 4;
  q.in_flight = 5;
  spoold::queue_snapshot gone;
  gone.name = "old";
  const std::string data = spoold::encode_snapshot({q, gone});
  auto back = spoold::decode_snapshot(data);
  REQUIRE(back);
  REQUIRE(back->size() == 2);
  CHECK((*back)[0].name == "mail");
  CHECK((*back)[0].dir == "/srv/spool/mail");
  CHECK((*back)[0].counters.tasks == q.counters.tasks);
  CHECK((*back)[0].counters.duration_buckets == q.counters.duration_buckets);
  CHECK((*back)[0].counters.duration_sum_s == 0.25);
  CHECK((*back)[0].counters.restarts == q.counters.restarts);
  CHECK((*back)[0].pending == 3);
  CHECK((*back)[0].delayed == 4);
  CHECK((*back)[0].in_flight == 5);
  CHECK((*back)[1].dir.empty());
  for (std::size_t cut = 0; cut < data.size(); ++cut) {
    CHECK_FALSE(spoold::decode_snapshot(std::string_view(data).substr(0, cut)));
  }
  CHECK_FALSE(spoold::decode_snapshot(data + "x"));
}

TEST_CASE("the exposition has cumulative buckets and no gauges for a removed queue") {
  spoold::queue_snapshot q;
  q.name = "a\"b";
  q.dir = "/d";
  q.counters.duration_buckets[0] = 1;
  q.counters.duration_buckets[2] = 2;
  q.counters.duration_buckets.back() = 4;
  q.counters.tasks[0] = 7;
  spoold::queue_snapshot gone;
  gone.name = "gone";
  const std::string text = spoold::render_exposition({q, gone}, {spoold::dir_gauges{9, 1.5}, std::nullopt});
  CHECK_THAT(text, Contains("spoold_tasks_total{queue=\"a\\\"b\",outcome=\"ok\"} 7\n"));
  CHECK_THAT(text, Contains("spoold_task_duration_seconds_bucket{queue=\"a\\\"b\",le=\"0.0005\"} 1\n"));
  CHECK_THAT(text, Contains("spoold_task_duration_seconds_bucket{queue=\"a\\\"b\",le=\"0.001\"} 1\n"));
  CHECK_THAT(text, Contains("spoold_task_duration_seconds_bucket{queue=\"a\\\"b\",le=\"0.0025\"} 3\n"));
  CHECK_THAT(text, Contains("spoold_task_duration_seconds_bucket{queue=\"a\\\"b\",le=\"+Inf\"} 7\n"));
  CHECK_THAT(text, Contains("spoold_task_duration_seconds_count{queue=\"a\\\"b\"} 7\n"));
  CHECK_THAT(text, Contains("spoold_queue_failed{queue=\"a\\\"b\"} 9\n"));
  CHECK_THAT(text, Contains("spoold_queue_oldest_pending_age_seconds{queue=\"a\\\"b\"} 1.5\n"));
  CHECK_THAT(text, Contains("spoold_tasks_total{queue=\"gone\",outcome=\"ok\"} 0\n"));
  CHECK(text.find("spoold_queue_pending{queue=\"gone\"}") == std::string::npos);
}

TEST_CASE("the metrics address is a numeric address and a port in range") {
  auto v4 = spoold::parse_listen_address("127.0.0.1:9464");
  REQUIRE(v4);
  CHECK(v4->family == AF_INET);
  CHECK(v4->port == 9464);
  auto v6 = spoold::parse_listen_address("[::1]:1");
  REQUIRE(v6);
  CHECK(v6->family == AF_INET6);
  CHECK(v6->host == "::1");
  for (const char* bad : {"", "9464", "localhost:9464", "127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:-1", "::1:9464",
                          "[::1]:", "127.0.0.1:94a", "1.2.3:80", "[127.0.0.1]:80"}) {
    auto r = spoold::parse_listen_address(bad);
    CHECK_FALSE(r);
    if (!r) CHECK_THAT(r.err().message, Contains(std::string("host.metrics = \"") + bad + "\""));
  }
}

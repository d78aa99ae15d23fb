// A queue with source = "redis" (SPEC §7): its keys, their defaults, the URL
// forms, and every mistake reported at file:line:col naming the queue.
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <string>
#include <string_view>

#include "config.hpp"
#include "redis_url.hpp"
#include "support/temp_dir.hpp"

using Catch::Contains;

namespace {

struct redis_config_file {
  redis_config_file() : path_(tmp_ / "spoold.toml") {
    REQUIRE(::mkdir((tmp_ / "plugins").c_str(), 0700) == 0);
    spoold::unit::write_file(tmp_ / "plugins/liblog_writer.so", "");
  }
  spoold::config_load load(std::string_view text) {
    spoold::unit::write_file(path_, text);
    return spoold::load_config(path_);
  }
  std::string at(int line, int col) const { return path_ + ":" + std::to_string(line) + ":" + std::to_string(col) + ": "; }
  spoold::unit::temp_dir tmp_;
  std::string path_;
};

std::string problems(const spoold::config_load& r) {
  std::string out;
  for (const auto& p : r.problems) out += p + "\n";
  return out;
}

spoold::redis_url url(std::string_view text) {
  std::string why;
  auto u = spoold::parse_redis_url(text, why);
  INFO(text << ": " << why);
  REQUIRE(u);
  return *u;
}

std::string url_problem(std::string_view text) {
  std::string why;
  auto u = spoold::parse_redis_url(text, why);
  CHECK_FALSE(u);
  return why;
}

}  // namespace

TEST_CASE("config redis: a Redis queue with only a url takes the defaults", "[config][redis]") {
  redis_config_file f;
  const auto r = f.load(R"([[queue]]
name = "mail"
source = "redis"
url = "redis://127.0.0.1:6380/2"
plugin = "log_writer"
)");
  INFO(problems(r));
  REQUIRE(r.ok());
  const auto& q = r.value.queues.at(0);
  REQUIRE(q.redis);
  CHECK(q.dir.empty());
  CHECK(q.redis->stream == "spoold:mail");
  CHECK(q.redis->group == "spoold");
  CHECK(q.redis->lease == spoold::duration(60000));
  CHECK(q.redis->batch_window == spoold::duration(2));
  CHECK(q.redis->url.host == "127.0.0.1");
  CHECK(q.redis->url.port == 6380);
  CHECK(q.redis->url.db == 2);
  CHECK(q.redis->url.password.empty());
}

TEST_CASE("config redis: stream, group and lease are read", "[config][redis]") {
  redis_config_file f;
  const auto r = f.load(R"([[queue]]
name = "mail"
source = "redis"
url = "unix:///run/redis/redis.sock?db=3&password=s%40cret"
stream = "jobs"
group = "workers"
lease = "5s"
batch_window = "0ms"
plugin = "log_writer"
)");
  INFO(problems(r));
  REQUIRE(r.ok());
  const auto& q = r.value.queues.at(0);
  REQUIRE(q.redis);
  CHECK(q.redis->stream == "jobs");
  CHECK(q.redis->group == "workers");
  CHECK(q.redis->lease == spoold::duration(5000));
  CHECK(q.redis->batch_window == spoold::duration(0));
  CHECK(q.redis->url.socket_path == "/run/redis/redis.sock");
  CHECK(q.redis->url.db == 3);
  CHECK(q.redis->url.password == "s@cret");
  CHECK(q.redis->url.display() == "unix:/run/redis/redis.sock?db=3");
}

TEST_CASE("config redis: URL forms", "[config][redis]") {
  CHECK(url("redis://localhost").port == 6379);
  CHECK(url("redis://localhost").db == 0);
  CHECK(url("redis://:pw@h:1/0").password == "pw");
  CHECK(url("redis://default:pw@h/1").password == "pw");
  CHECK(url("redis://[::1]:7000/4").host == "::1");
  CHECK(url("redis://[::1]:7000/4").port == 7000);
  CHECK(url("redis://h:6379/5").display() == "h:6379/5");
  CHECK(url("unix:///tmp/r.sock").socket_path == "/tmp/r.sock");
  CHECK_THAT(url_problem("http://h"), Contains("expected redis://"));
  CHECK_THAT(url_problem("redis://"), Contains("no host"));
  CHECK_THAT(url_problem("redis://h:0"), Contains("port '0'"));
  CHECK_THAT(url_problem("redis://h:99999"), Contains("port '99999'"));
  CHECK_THAT(url_problem("redis://h:x"), Contains("port 'x'"));
  CHECK_THAT(url_problem("redis://h/db1"), Contains("not a database number"));
  CHECK_THAT(url_problem("redis://alice:pw@h"), Contains("user 'alice'"));
  CHECK_THAT(url_problem("unix://relative.sock"), Contains("absolute path"));
  CHECK_THAT(url_problem("unix:///r.sock?db=x"), Contains("db=x"));
  CHECK_THAT(url_problem("unix:///r.sock?timeout=1"), Contains("unknown parameter 'timeout'"));
  CHECK_THAT(url_problem("unix:///r.sock?password=%4"), Contains("%-escape"));
}

TEST_CASE("config redis: mistakes are reported at their line and column, naming the queue", "[config][redis]") {
  redis_config_file f;
  const auto r = f.load(R"([[queue]]
name = "a"
source = "redis"
url = "redis://h:x"
dir = "spool/a"
plugin = "log_writer"

[[queue]]
name = "b"
source = "kafka"
dir = "spool/b"
plugin = "log_writer"

[[queue]]
name = "c"
dir = "spool/c"
stream = "s"
plugin = "log_writer"

[[queue]]
name = "d"
source = "redis"
plugin = "log_writer"

[[queue]]
name = "e"
source = "redis"
url = "redis://h"
lease = "10ms"
group = ""
plugin = "log_writer"

[[queue]]
name = "f"
source = "redis"
url = "redis://h"
stream = "spoold:g"
plugin = "log_writer"

[[queue]]
name = "g"
source = "redis"
url = "redis://h:6379/0"
plugin = "log_writer"
)");
  const std::string all = problems(r);
  INFO(all);
  CHECK_THAT(all, Contains(f.at(4, 7) + "queue 'a': url = \"redis://h:x\": port 'x'"));
  CHECK_THAT(all, Contains(f.at(5, 7) + "queue 'a': dir is not used by a queue with source = \"redis\""));
  CHECK_THAT(all, Contains(f.at(10, 10) + "queue 'b': source = \"kafka\": expected \"dir\" (the default) or \"redis\""));
  CHECK_THAT(all, Contains(f.at(17, 10) + "queue 'c': stream is a setting of a Redis queue"));
  CHECK_THAT(all, Contains("queue 'd' has source = \"redis\" but no url"));
  CHECK_THAT(all, Contains(f.at(29, 9) + "queue 'e': lease = \"10ms\" is too short"));
  CHECK_THAT(all, Contains(f.at(30, 9) + "queue 'e': group is empty"));
  CHECK_THAT(all, Contains(f.at(43, 7) + "queue 'g': stream \"spoold:g\" of h:6379/0 is used by another queue"));
  CHECK(r.problems.size() == 8);
}

TEST_CASE("config redis: the directory settings of a queue are refused on a Redis queue", "[config][redis]") {
  redis_config_file f;
  const auto r = f.load(R"([defaults]
dir_mode = "0750"

[[queue]]
name = "a"
source = "redis"
url = "redis://h"
file_mode = "0640"
dir_group = "root"
plugin = "log_writer"
)");
  const std::string all = problems(r);
  INFO(all);
  CHECK_THAT(all, Contains(f.at(8, 13) + "queue 'a': file_mode is not used by a queue with source = \"redis\""));
  CHECK_THAT(all, Contains(f.at(9, 13) + "queue 'a': dir_group is not used"));
  CHECK(r.problems.size() == 2);  // [defaults] may hold them for the directory queues
}

TEST_CASE("config redis: a lease not longer than the timeout is refused", "[config][redis]") {
  redis_config_file f;
  const auto r = f.load(R"([[queue]]
name = "a"
source = "redis"
url = "redis://h"
lease = "30s"
timeout = "30s"
plugin = "log_writer"
)");
  INFO(problems(r));
  REQUIRE(r.problems.size() == 1);
  CHECK_THAT(r.problems[0], Contains(f.at(5, 9) + "queue 'a': lease (30s) is not longer than timeout (30s)"));
}

TEST_CASE("config redis: a batch_window over half the lease, or on a directory queue, is refused", "[config][redis]") {
  redis_config_file f;
  const auto r = f.load(R"([[queue]]
name = "a"
source = "redis"
url = "redis://h"
lease = "10s"
batch_window = "6s"
plugin = "log_writer"

[[queue]]
name = "b"
dir = "b"
batch_window = "1ms"
plugin = "log_writer"
)");
  const std::string all = problems(r);
  INFO(all);
  CHECK_THAT(all, Contains(f.at(6, 16) + "queue 'a': batch_window = \"6s\" is more than half the lease (10s)"));
  CHECK_THAT(all, Contains(f.at(12, 16) + "queue 'b': batch_window is a setting of a Redis queue"));
  CHECK(r.problems.size() == 2);
}

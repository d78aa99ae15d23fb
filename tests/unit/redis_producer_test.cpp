// The Redis producer (host/redis_producer.hpp): what it refuses before
// talking to a server, and a server that is not there. Writes to a real
// server are in tests/redis (test_spoolctl.py, test_python_plugin.py).
#include <catch2/catch.hpp>
#include <cerrno>
#include <string>

#include "redis_limits.hpp"
#include "redis_producer.hpp"
#include "spool_file.hpp"

using Catch::Contains;

namespace {
spoold::task_request with_args(std::vector<spoold::owned_arg> args) {
  spoold::task_request r;
  r.args = std::move(args);
  return r;
}
}  // namespace

TEST_CASE("redis producer: the checks of a spool file, and the entry's own", "[redis]") {
  CHECK(spoold::check_redis_task(with_args({{"to", "a@b"}, {"priority", "3"}})).ok());

  auto own = spoold::check_redis_task(with_args({{"a", "1"}, {"spoold.id", "x"}}));
  REQUIRE_FALSE(own.ok());
  CHECK(own.err().code == EINVAL);
  CHECK_THAT(own.err().message, Contains("'spoold.id' starts with 'spoold.'"));

  auto empty_key = spoold::check_redis_task(with_args({{"", "v"}}));
  REQUIRE_FALSE(empty_key.ok());
  CHECK(empty_key.err().code == EINVAL);

  auto big_args = spoold::check_redis_task(with_args({{"k", std::string(70000, 'v')}}));
  REQUIRE_FALSE(big_args.ok());
  CHECK(big_args.err().code == E2BIG);
  CHECK_THAT(big_args.err().message, Contains("over the 65535 bytes"));

  spoold::task_request big_body;
  big_body.body.assign(spoold::k_max_body_bytes + 1, 'b');
  auto body = spoold::check_redis_task(big_body);
  REQUIRE_FALSE(body.ok());
  CHECK(body.err().code == E2BIG);

  std::vector<spoold::owned_arg> many(spoold::k_max_entry_fields - 1, {"k", ""});
  auto fields = spoold::check_redis_task(with_args(many));
  REQUIRE_FALSE(fields.ok());
  CHECK(fields.err().code == E2BIG);
  many.pop_back();
  CHECK(spoold::check_redis_task(with_args(many)).ok());
}

TEST_CASE("redis producer: a server that is not there is named", "[redis]") {
  std::string why;
  auto url = spoold::parse_redis_url("unix:///nonexistent/spoold-test/redis.sock", why);
  REQUIRE(url);
  spoold::redis_producer producer(*url, "spoold:q", std::chrono::milliseconds(500));
  auto written = producer.enqueue(with_args({{"a", "1"}}), spoold::make_task_name());
  REQUIRE_FALSE(written.ok());
  CHECK(written.err().code == spoold::k_redis_unreachable);
  CHECK_THAT(written.err().message, Contains("Redis at unix:/nonexistent/spoold-test/redis.sock"));
  // Bad input is refused before any connection.
  auto refused = producer.enqueue(with_args({{"spoold.body", "x"}}), spoold::make_task_name());
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.err().code == EINVAL);
}

// The per-try history kept in a task file (spoold.try.<n>, spool_file.hpp):
// the value round-trips, malformed entries are left out, at most
// k_max_tries_kept are kept, and the args block always leaves room for the
// spoold.error a rewrite adds.
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "spool_file.hpp"

namespace {

spoold::spool_view view_of(const std::vector<spoold::owned_arg>& args, std::string& storage) {
  auto bytes = spoold::encode_spool_file(args, "body");
  REQUIRE(bytes.ok());
  storage = *bytes;
  auto parsed = spoold::parse_spool_file(storage);
  REQUIRE(parsed.ok());
  return *parsed.task;
}

spoold::try_record sample() {
  spoold::try_record r;
  r.attempt = 2;
  r.started_ms = 1764643200123;
  r.pid = 4242;
  r.duration_ms = 17;
  r.counted_ms = 1764643200140;
  r.status = "retry";
  r.error = "plugin 'x' returned Retry: a=b c=d\nsecond line";
  return r;
}

}  // namespace

TEST_CASE("a try record round-trips through its value, error text included") {
  const auto r = sample();
  const std::string value = spoold::format_try_value(r);
  CHECK(value.rfind("attempt=2 started_ms=1764643200123 pid=4242 duration_ms=17 counted_ms=1764643200140 status=retry error=", 0) == 0);
  auto back = spoold::parse_try("spoold.try.7", value);
  REQUIRE(back.has_value());
  CHECK(back->number == 7);
  CHECK(back->attempt == 2);
  CHECK(back->started_ms == r.started_ms);
  CHECK(back->pid == r.pid);
  CHECK(back->duration_ms == r.duration_ms);
  CHECK(back->counted_ms == r.counted_ms);
  CHECK(back->status == "retry");
  CHECK(back->error == r.error);
}

TEST_CASE("an owed try has no start, pid or duration") {
  spoold::try_record r;
  r.attempt = 1;
  r.counted_ms = 5;
  r.status = "crash";
  r.error = "spooler killed by signal 9 (SIGKILL)";
  auto back = spoold::parse_try("spoold.try.1", spoold::format_try_value(r));
  REQUIRE(back.has_value());
  CHECK_FALSE(back->started_ms.has_value());
  CHECK_FALSE(back->pid.has_value());
  CHECK_FALSE(back->duration_ms.has_value());
  CHECK(back->status == "crash");
}

TEST_CASE("malformed history entries are not records") {
  CHECK_FALSE(spoold::parse_try("spoold.try.0", "attempt=1 counted_ms=1 status=retry error=").has_value());
  CHECK_FALSE(spoold::parse_try("spoold.try.x", "attempt=1 counted_ms=1 status=retry error=").has_value());
  CHECK_FALSE(spoold::parse_try("spoold.tryX1", "attempt=1 counted_ms=1 status=retry error=").has_value());
  CHECK_FALSE(spoold::parse_try("spoold.try.1", "attempt=1 status=retry error=").has_value());
  CHECK_FALSE(spoold::parse_try("spoold.try.1", "attempt=z counted_ms=1 status=retry error=").has_value());
  CHECK_FALSE(spoold::parse_try("spoold.try.1", "garbage").has_value());
  CHECK_FALSE(spoold::parse_try("other", "attempt=1 counted_ms=1 status=retry error=").has_value());
  CHECK(spoold::parse_try("spoold.try.1", "attempt=1 counted_ms=1 status=retry future=9 error=").has_value());
}

TEST_CASE("the history keeps the newest k_max_tries_kept tries, numbered on") {
  std::vector<spoold::owned_arg> args{{"type", "a"}};
  std::string storage;
  for (unsigned i = 0; i < spoold::k_max_tries_kept + 5; ++i) {
    auto view = view_of(args, storage);
    spoold::owned_arg held;
    auto r = sample();
    r.attempt = i + 1;
    auto with = spoold::args_with_try(view, r, held);
    std::vector<spoold::owned_arg> next;
    for (const auto& a : with) next.push_back({std::string(a.key), std::string(a.value)});
    args = next;
  }
  auto view = view_of(args, storage);
  auto tries = spoold::tries_of(view);
  REQUIRE(tries.size() == spoold::k_max_tries_kept);
  CHECK(tries.front().number == 6);
  CHECK(tries.back().number == spoold::k_max_tries_kept + 5);
  CHECK(tries.back().attempt == spoold::k_max_tries_kept + 5);
  CHECK(view.arg("type") == "a");
}

TEST_CASE("the history gives way to the task's own args near the 64 KiB limit") {
  // Args that leave room for spoold.error but not for the history as well.
  std::vector<spoold::owned_arg> args{{"big", std::string(60000, 'x')}, {"spoold.try.1", ""}};
  auto r0 = sample();
  r0.error = std::string(400, 'e');
  args[1].value = spoold::format_try_value(r0);
  args.push_back({"more", std::string(2400, 'y')});
  std::string storage;
  auto view = view_of(args, storage);
  spoold::owned_arg held;
  auto r = sample();
  r.error = std::string(2000, 'z');  // cut to k_max_try_error
  auto with = spoold::args_with_try(view, r, held);
  spoold::spool_view rewritten{with, view.body};
  auto out = spoold::rewrite_bookkeeping(rewritten, 2, std::string(5000, 'E'), 1700000000);
  auto encoded = spoold::encode_spool_file(out, view.body);
  INFO((encoded.ok() ? std::string() : encoded.err().message));
  REQUIRE(encoded.ok());
  auto parsed = spoold::parse_spool_file(*encoded);
  REQUIRE(parsed.ok());
  auto tries = spoold::tries_of(*parsed.task);
  REQUIRE(tries.size() == 1);
  CHECK(tries[0].number == 2);  // the old entry went, the new one stayed
  CHECK(tries[0].error.size() == spoold::k_max_try_error);
  CHECK(parsed.task->arg("big")->size() == 60000);
}

TEST_CASE("with no room at all the try is not recorded and the rewrite still fits") {
  std::vector<spoold::owned_arg> args{{"big", std::string(63300, 'x')}};
  std::string storage;
  auto view = view_of(args, storage);
  spoold::owned_arg held;
  auto with = spoold::args_with_try(view, sample(), held);
  spoold::spool_view rewritten{with, view.body};
  auto encoded = spoold::encode_spool_file(spoold::rewrite_bookkeeping(rewritten, 1, std::string(2048, 'E'), 1), "");
  REQUIRE(encoded.ok());
  auto parsed = spoold::parse_spool_file(*encoded);
  REQUIRE(parsed.ok());
  CHECK(spoold::tries_of(*parsed.task).empty());
}

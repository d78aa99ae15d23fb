// The uWSGI spool file format (SPEC §2): the parser against hand-built
// bytes, the encoder, the bookkeeping rewrite, the `at`/attempt readers,
// the name rules and the atomic writer.
#include "spool_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdint>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "posix.hpp"
#include "support/spool_bytes.hpp"
#include "support/temp_dir.hpp"

using namespace std::string_literals;
using spoold::parse_problem;
using spoold::parse_spool_file;
using spoold::unit::raw_arg;
using spoold::unit::raw_spool;
using spoold::unit::u16le;

namespace {

// The view points into bytes: keep them alive while it is used.
spoold::spool_view parse_ok(std::string_view bytes) {
  auto r = parse_spool_file(bytes);
  INFO("parse failure: " << r.failure.reason);
  REQUIRE(r.ok());
  return *r.task;
}

spoold::parse_error parse_fails(std::string_view bytes) {
  auto r = parse_spool_file(bytes);
  REQUIRE_FALSE(r.ok());
  return r.failure;
}

spoold::spool_view view_of(std::vector<spoold::spool_arg> args, std::string_view body = {}) {
  spoold::spool_view v;
  v.args = std::move(args);
  v.body = body;
  return v;
}

}  // namespace

TEST_CASE("the SPEC example {'hello':'world'} parses and encodes byte for byte", "[spool_file]") {
  const std::string spec_bytes = "\x11\x0e\x00\x00\x05\x00hello\x05\x00world"s;
  REQUIRE(spec_bytes.size() == 18);

  const auto v = parse_ok(spec_bytes);
  REQUIRE(v.args.size() == 1);
  CHECK(v.args[0].key == "hello");
  CHECK(v.args[0].value == "world");
  CHECK(v.arg("hello") == std::optional<std::string_view>("world"));
  CHECK_FALSE(v.arg("world").has_value());
  CHECK(v.body.empty());

  auto encoded = spoold::encode_spool_file({{"hello", "world"}}, "");
  REQUIRE(encoded.ok());
  CHECK(*encoded == spec_bytes);
}

TEST_CASE("a header with no args and no body is a valid, empty task", "[spool_file]") {
  const auto v = parse_ok("\x11\x00\x00\x00"s);
  CHECK(v.args.empty());
  CHECK(v.body.empty());
}

TEST_CASE("the body is every byte after the args block, NUL and 0xff included", "[spool_file]") {
  const std::string body = "\0\xff\0abc\xff\n"s;
  REQUIRE(body.size() == 8);
  const std::string bytes = raw_spool(raw_arg("k", "v"), body);
  const auto v = parse_ok(bytes);
  REQUIRE(v.args.size() == 1);
  CHECK(v.body == body);
  CHECK(v.body.size() == 8);
  // A view into the input, not a copy.
  CHECK(v.body.data() == bytes.data() + bytes.size() - body.size());

  const std::string no_args_bytes = raw_spool("", body);
  const auto no_args = parse_ok(no_args_bytes);
  CHECK(no_args.args.empty());
  CHECK(no_args.body == body);
}

TEST_CASE("keys and values are arbitrary bytes", "[spool_file]") {
  const std::string key = "\0k\xff"s;
  const std::string value = "\xfe\0\x01"s;
  const std::string bytes = raw_spool(raw_arg(key, value));
  const auto v = parse_ok(bytes);
  REQUIRE(v.args.size() == 1);
  CHECK(v.args[0].key == key);
  CHECK(v.args[0].value == value);
  CHECK(v.arg(key) == std::optional<std::string_view>(value));
}

TEST_CASE("duplicate keys are kept in order and arg() returns the last", "[spool_file]") {
  const std::string bytes = raw_spool(raw_arg("k", "first") + raw_arg("other", "x") + raw_arg("k", "last"));
  const auto v = parse_ok(bytes);
  REQUIRE(v.args.size() == 3);
  CHECK(v.args[0].value == "first");
  CHECK(v.args[2].value == "last");
  CHECK(v.arg("k") == std::optional<std::string_view>("last"));
  CHECK(v.arg("other") == std::optional<std::string_view>("x"));
}

TEST_CASE("an empty value is present and empty, unlike a missing key", "[spool_file]") {
  const std::string bytes = raw_spool(raw_arg("empty", "") + raw_arg("k", "v"), "body");
  const auto v = parse_ok(bytes);
  REQUIRE(v.args.size() == 2);
  auto e = v.arg("empty");
  REQUIRE(e.has_value());
  CHECK(e->empty());
  CHECK_FALSE(v.arg("missing").has_value());
  CHECK(v.body == "body");
}

TEST_CASE("a file shorter than its header says is incomplete", "[spool_file]") {
  SECTION("empty") {
    const auto e = parse_fails("");
    CHECK(e.problem == parse_problem::incomplete);
    CHECK(e.reason == "the file is empty");
  }
  SECTION("1 to 3 bytes") {
    const std::string header = "\x11\x00\x00\x00"s;
    for (std::size_t n = 1; n <= 3; ++n) {
      INFO(n << " bytes");
      const auto e = parse_fails(std::string_view(header).substr(0, n));
      CHECK(e.problem == parse_problem::incomplete);
      CHECK_THAT(e.reason, Catch::Contains(std::to_string(n) + " bytes") && Catch::Contains("4-byte header"));
    }
  }
  SECTION("the header announces more args than the file has") {
    const std::string full = "\x11\x0e\x00\x00\x05\x00hello\x05\x00world"s;
    const auto e = parse_fails(std::string_view(full).substr(0, full.size() - 1));
    CHECK(e.problem == parse_problem::incomplete);
    CHECK_THAT(e.reason, Catch::Contains("announces 14 bytes") && Catch::Contains("has 13"));
  }
  SECTION("the header announces 65535 bytes of a 4-byte file") {
    const auto e = parse_fails("\x11\xff\xff\x00"s);
    CHECK(e.problem == parse_problem::incomplete);
    CHECK_THAT(e.reason, Catch::Contains("65535") && Catch::Contains("has 0"));
  }
}

TEST_CASE("lengths inside the args block that do not add up are malformed", "[spool_file]") {
  SECTION("a key length that runs past the block") {
    // Key length 10 but only 3 bytes follow inside the block; the body
    // after the block must not be read as part of the key.
    const auto e = parse_fails(raw_spool(u16le(10) + "abc", "0123456789"));
    CHECK(e.problem == parse_problem::malformed);
    CHECK_THAT(e.reason, Catch::Contains("key of 10 bytes runs past"));
  }
  SECTION("a value length that runs past the block") {
    const auto e = parse_fails(raw_spool(u16le(1) + "k" + u16le(5) + "abc", "body-bytes"));
    CHECK(e.problem == parse_problem::malformed);
    CHECK_THAT(e.reason, Catch::Contains("value of 5 bytes runs past"));
  }
  SECTION("a value length of 0xffff in a short block") {
    const auto e = parse_fails(raw_spool(u16le(1) + "k" + u16le(0xffff)));
    CHECK(e.problem == parse_problem::malformed);
    CHECK_THAT(e.reason, Catch::Contains("65535"));
  }
  SECTION("a zero-length key") {
    const auto e = parse_fails(raw_spool(raw_arg("a", "b") + u16le(0) + u16le(1) + "v"));
    CHECK(e.problem == parse_problem::malformed);
    CHECK_THAT(e.reason, Catch::Contains("empty key at args offset 6"));
  }
  SECTION("a dangling single byte after the last pair") {
    const auto e = parse_fails(raw_spool(raw_arg("a", "b") + "x"));
    CHECK(e.problem == parse_problem::malformed);
    CHECK_THAT(e.reason, Catch::Contains("key length is cut off at args offset 6"));
  }
  SECTION("a block of a single byte") {
    const auto e = parse_fails(raw_spool("x"));
    CHECK(e.problem == parse_problem::malformed);
  }
  SECTION("a key with its value length missing") {
    const auto e = parse_fails(raw_spool(u16le(1) + "k"));
    CHECK(e.problem == parse_problem::malformed);
    CHECK_THAT(e.reason, Catch::Contains("value length"));
  }
  SECTION("a key with half a value length") {
    const auto e = parse_fails(raw_spool(u16le(1) + "k" + "\x01"));
    CHECK(e.problem == parse_problem::malformed);
  }
}

TEST_CASE("an args block of exactly 65535 bytes parses and encodes", "[spool_file]") {
  // One pair: 2 + 1 (key) + 2 + 65530 (value) = 65535.
  const std::string value(65530, 'v');
  const std::string bytes = raw_spool(raw_arg("k", value), "tail");
  REQUIRE(bytes.size() == 4 + 65535 + 4);
  CHECK(bytes.substr(1, 2) == "\xff\xff"s);

  const auto v = parse_ok(bytes);
  REQUIRE(v.args.size() == 1);
  CHECK(v.args[0].value.size() == 65530);
  CHECK(v.body == "tail");

  auto encoded = spoold::encode_spool_file({{"k", value}}, "tail");
  REQUIRE(encoded.ok());
  CHECK(*encoded == bytes);
}

TEST_CASE("encode refuses an args block over 65535 bytes and points at the body", "[spool_file]") {
  SECTION("one byte too many in total") {
    auto encoded = spoold::encode_spool_file({{"k", std::string(65531, 'v')}}, "");
    REQUIRE_FALSE(encoded.ok());
    CHECK_THAT(encoded.err().message, Catch::Contains("65536") && Catch::Contains("body"));
  }
  SECTION("spread over many small args") {
    std::vector<spoold::owned_arg> args;
    for (int i = 0; i < 7000; ++i) args.push_back({"key" + std::to_string(i), "value"});
    auto encoded = spoold::encode_spool_file(args, "");
    REQUIRE_FALSE(encoded.ok());
    CHECK_THAT(encoded.err().message, Catch::Contains("body"));
  }
  SECTION("a single value over 64 KiB") {
    auto encoded = spoold::encode_spool_file({{"big", std::string(70000, 'v')}}, "");
    REQUIRE_FALSE(encoded.ok());
    CHECK_THAT(encoded.err().message, Catch::Contains("'big'") && Catch::Contains("body"));
  }
  SECTION("an empty key") {
    auto encoded = spoold::encode_spool_file({{"", "v"}}, "");
    REQUIRE_FALSE(encoded.ok());
    CHECK_THAT(encoded.err().message, Catch::Contains("empty key"));
  }
}

TEST_CASE("encode then parse gives back the same args and body", "[spool_file]") {
  const std::vector<spoold::owned_arg> args = {
      {"type", "mail"},
      {"\0bin\xff"s, "\xff\0\x01"s},
      {"empty", ""},
      {"type", "again"},
      {"at", "1700000000.25"},
  };
  const std::string body = "line1\n\0\xff tail"s;
  auto encoded = spoold::encode_spool_file(args, body);
  REQUIRE(encoded.ok());

  std::string expected_block;
  for (const auto& a : args) expected_block += raw_arg(a.key, a.value);
  CHECK(*encoded == raw_spool(expected_block, body));

  const auto v = parse_ok(*encoded);
  REQUIRE(v.args.size() == args.size());
  for (std::size_t i = 0; i < args.size(); ++i) {
    CHECK(v.args[i].key == args[i].key);
    CHECK(v.args[i].value == args[i].value);
  }
  CHECK(v.body == body);
  CHECK(v.arg("type") == std::optional<std::string_view>("again"));

  auto empty = spoold::encode_spool_file({}, "");
  REQUIRE(empty.ok());
  CHECK(*empty == "\x11\x00\x00\x00"s);
}

TEST_CASE("rewrite_bookkeeping replaces the spoold.* keys and keeps the rest in order", "[spool_file]") {
  const auto task = view_of({{"a", "1"},
                             {"spoold.attempt", "3"},
                             {"spoold.error", "old error"},
                             {"b", "2"},
                             {"spoold.failed_at", "5"},
                             {"spoold.other", "kept"},
                             {"spoold.attempt", "9"}});

  SECTION("attempt and error, no failed_at") {
    const auto out = spoold::rewrite_bookkeeping(task, 4, "new error", std::nullopt);
    REQUIRE(out.size() == 5);
    CHECK(out[0].key == "a");
    CHECK(out[0].value == "1");
    CHECK(out[1].key == "b");
    CHECK(out[2].key == "spoold.other");
    CHECK(out[2].value == "kept");
    CHECK(out[3].key == "spoold.attempt");
    CHECK(out[3].value == "4");
    CHECK(out[4].key == "spoold.error");
    CHECK(out[4].value == "new error");
  }
  SECTION("no error drops the old one") {
    const auto out = spoold::rewrite_bookkeeping(task, 0, std::nullopt, std::nullopt);
    REQUIRE(out.size() == 4);
    CHECK(out[3].key == "spoold.attempt");
    CHECK(out[3].value == "0");
    for (const auto& a : out) CHECK(a.key != "spoold.error");
  }
  SECTION("failed_at") {
    const auto out = spoold::rewrite_bookkeeping(task, 5, "gave up", std::int64_t{1700000000});
    REQUIRE(out.size() == 6);
    CHECK(out[5].key == "spoold.failed_at");
    CHECK(out[5].value == "1700000000");
  }
  SECTION("a huge error is cut so the file stays encodable") {
    const std::string huge(100000, 'e');
    const auto out = spoold::rewrite_bookkeeping(task, 1, huge, std::nullopt);
    REQUIRE(out.size() == 5);
    CHECK(out[4].value.size() == 2048);
    auto encoded = spoold::encode_spool_file(out, task.body);
    CHECK(encoded.ok());
  }
  SECTION("the result encodes and parses back with the new values") {
    auto encoded = spoold::encode_spool_file(spoold::rewrite_bookkeeping(task, 7, "e", std::nullopt), "body");
    REQUIRE(encoded.ok());
    const auto v = parse_ok(*encoded);
    CHECK(spoold::attempt_of(v) == 7);
    CHECK(v.arg("spoold.error") == std::optional<std::string_view>("e"));
    CHECK_FALSE(v.arg("spoold.failed_at").has_value());
    CHECK(v.body == "body");
  }
}

TEST_CASE("attempt_of reads spoold.attempt, 0 when absent or not a decimal count", "[spool_file]") {
  auto attempt = [](std::string_view value) { return spoold::attempt_of(view_of({{"spoold.attempt", value}})); };
  CHECK(spoold::attempt_of(view_of({})) == 0);
  CHECK(attempt("0") == 0);
  CHECK(attempt("3") == 3);
  CHECK(attempt("007") == 7);
  // Capped so that attempt + 1 never wraps; max_attempts is at most 10^6.
  CHECK(attempt("1000000") == 1000000u);
  CHECK(attempt("4294967295") == 1000000u);
  CHECK(attempt("4294967296") == 0);
  CHECK(attempt("99999999999999999999999") == 0);
  CHECK(attempt("") == 0);
  CHECK(attempt("-1") == 0);
  CHECK(attempt("+1") == 0);
  CHECK(attempt("3x") == 0);
  CHECK(attempt(" 3") == 0);
  CHECK(attempt("3 ") == 0);
  CHECK(attempt("1.5") == 0);
  CHECK(attempt("abc") == 0);
  CHECK(spoold::attempt_of(view_of({{"spoold.attempt", "1"}, {"spoold.attempt", "6"}})) == 6);
}

TEST_CASE("at_of reads the `at` key as unix seconds with an optional fraction", "[spool_file]") {
  // As text, so that a failure shows the value.
  auto at = [](std::string_view value) {
    const auto ns = spoold::at_of(view_of({{"at", value}}));
    return ns ? std::to_string(*ns) : std::string("none");
  };

  CHECK_FALSE(spoold::at_of(view_of({})).has_value());
  CHECK(at("1700000000") == "1700000000000000000");
  CHECK(at("1700000000.5") == "1700000000500000000");
  CHECK(at("1700000000.25") == "1700000000250000000");
  CHECK(at("1700000000.000000001") == "1700000000000000001");
  CHECK(at("1700000000.123456789") == "1700000000123456789");
  // Digits past nanoseconds are dropped, not rounded.
  CHECK(at("1700000000.1234567899") == "1700000000123456789");
  CHECK(at("1700000000.") == "1700000000000000000");
  CHECK(at("1") == "1000000000");
  // The largest instant whose nanoseconds fit in an int64 (year 2262).
  CHECK(at("9223372035.999999999") == "9223372035999999999");

  SECTION("garbage") {
    CHECK(at("") == "none");
    CHECK(at("abc") == "none");
    CHECK(at("17e8") == "none");
    CHECK(at(" 1700000000") == "none");
    CHECK(at("1700000000 ") == "none");
    CHECK(at("1700000000.5x") == "none");
    CHECK(at("1700000000.-5") == "none");
    CHECK(at("1700000000.5.5") == "none");
    CHECK(at(".5") == "none");
    CHECK(at("+1700000000") == "none");
    CHECK(at("0x10") == "none");
  }
  SECTION("garbage after nine fractional digits") {
    CHECK(at("1700000000.1234567890x") == "none");
    CHECK(at("1700000000.123456789.5") == "none");
  }
  SECTION("zero and negative, as uWSGI ignores them") {
    CHECK(at("0") == "none");
    CHECK(at("0.5") == "none");
    CHECK(at("-1") == "none");
    CHECK(at("-1700000000.5") == "none");
  }
  SECTION("huge") {
    // Seconds whose nanoseconds overflow an int64 are not a time (and must
    // not be multiplied out: signed overflow).
    CHECK(at("9223372037") == "none");
    CHECK(at("253402300799") == "none");
    CHECK(at("253402300800") == "none");
    CHECK(at("9223372036854775807") == "none");
    CHECK(at("99999999999999999999999999") == "none");
    CHECK(at("1700000000." + std::string(60000, '9')) == "1700000000999999999");
  }
}

TEST_CASE("is_task_name accepts only the uWSGI prefix and nothing that leaves the directory", "[spool_file]") {
  CHECK(spoold::is_task_name("uwsgi_spoolfile_on_host_1_2_3_4_5"));
  CHECK(spoold::is_task_name("uwsgi_spoolfile_on_x"));
  CHECK(spoold::is_task_name("uwsgi_spoolfile_on_" + std::string(255 - 19, 'x')));

  CHECK_FALSE(spoold::is_task_name(""));
  CHECK_FALSE(spoold::is_task_name("uwsgi_spoolfile_on_"));
  CHECK_FALSE(spoold::is_task_name("../x"));
  CHECK_FALSE(spoold::is_task_name("a/b"));
  CHECK_FALSE(spoold::is_task_name("uwsgi_spoolfile_on_a/b"));
  CHECK_FALSE(spoold::is_task_name("uwsgi_spoolfile_on_../../etc/passwd"));
  CHECK_FALSE(spoold::is_task_name("uwsgi_spoolfile_on_x/"));
  CHECK_FALSE(spoold::is_task_name("../uwsgi_spoolfile_on_x"));
  CHECK_FALSE(spoold::is_task_name("/uwsgi_spoolfile_on_x"));
  CHECK_FALSE(spoold::is_task_name("xuwsgi_spoolfile_on_x"));
  CHECK_FALSE(spoold::is_task_name("UWSGI_SPOOLFILE_ON_x"));
  CHECK_FALSE(spoold::is_task_name(".spoold-tmp-uwsgi_spoolfile_on_x"));
  CHECK_FALSE(spoold::is_task_name("uwsgi_spoolfile_on_" + std::string(256 - 19, 'x')));
}

TEST_CASE("is_priority_name accepts 1 to 9 digits only", "[spool_file]") {
  CHECK(spoold::is_priority_name("0"));
  CHECK(spoold::is_priority_name("5"));
  CHECK(spoold::is_priority_name("007"));
  CHECK(spoold::is_priority_name("123456789"));

  CHECK_FALSE(spoold::is_priority_name(""));
  CHECK_FALSE(spoold::is_priority_name("1234567890"));
  CHECK_FALSE(spoold::is_priority_name("-1"));
  CHECK_FALSE(spoold::is_priority_name("+1"));
  CHECK_FALSE(spoold::is_priority_name("1a"));
  CHECK_FALSE(spoold::is_priority_name(" 1"));
  CHECK_FALSE(spoold::is_priority_name("../x"));
  CHECK_FALSE(spoold::is_priority_name("a/b"));
  CHECK_FALSE(spoold::is_priority_name("1/2"));
  CHECK_FALSE(spoold::is_priority_name(".."));
  CHECK_FALSE(spoold::is_priority_name("failed"));
}

namespace {

// The fields of uwsgi_spoolfile_on_<host>_<pid>_<counter>_<rand>_<sec>_<usec>,
// or an empty vector when the name has another shape. (Not std::regex: GCC
// 12 warns inside <regex> under -fsanitize, and the build uses -Werror.)
std::vector<std::string> task_name_fields(std::string_view name) {
  constexpr std::string_view prefix = "uwsgi_spoolfile_on_";
  if (name.substr(0, prefix.size()) != prefix) return {};
  name.remove_prefix(prefix.size());
  std::vector<std::string> numbers;
  for (int i = 0; i < 5; ++i) {
    const auto cut = name.rfind('_');
    if (cut == std::string_view::npos) return {};
    const std::string_view field = name.substr(cut + 1);
    if (field.empty() || field.find_first_not_of("0123456789") != std::string_view::npos) return {};
    numbers.insert(numbers.begin(), std::string(field));
    name = name.substr(0, cut);
  }
  if (name.empty() || name.find_first_of("_/") != std::string_view::npos) return {};
  numbers.insert(numbers.begin(), std::string(name));
  return numbers;
}

}  // namespace

TEST_CASE("make_task_name has uWSGI's shape and is unique", "[spool_file]") {
  char host_buf[256] = {};
  REQUIRE(::gethostname(host_buf, sizeof(host_buf) - 1) == 0);
  std::string host = host_buf;
  if (host.empty()) host = "localhost";
  for (char& c : host) {
    if (c == '/' || c == '_') c = '-';
  }

  timeval before{};
  ::gettimeofday(&before, nullptr);
  const std::string name = spoold::make_task_name();
  timeval after{};
  ::gettimeofday(&after, nullptr);

  INFO(name);
  const auto m = task_name_fields(name);
  REQUIRE(m.size() == 6);
  CHECK(m[0] == host);
  CHECK(m[1] == std::to_string(::getpid()));
  const long long sec = std::stoll(m[4]);
  const long long usec = std::stoll(m[5]);
  CHECK(sec >= before.tv_sec);
  CHECK(sec <= after.tv_sec);
  CHECK(usec < 1'000'000);
  const long long micros = sec * 1'000'000 + usec;
  CHECK(micros >= static_cast<long long>(before.tv_sec) * 1'000'000 + before.tv_usec);
  CHECK(micros <= static_cast<long long>(after.tv_sec) * 1'000'000 + after.tv_usec);
  CHECK(spoold::is_task_name(name));

  std::set<std::string> names;
  unsigned long long last_counter = std::stoull(m[2]);
  bool counter_increases = true;
  for (int i = 0; i < 10000; ++i) {
    std::string n = spoold::make_task_name();
    const auto mi = task_name_fields(n);
    if (mi.size() != 6) FAIL("bad name " << n);
    const unsigned long long counter = std::stoull(mi[2]);
    if (counter <= last_counter) counter_increases = false;
    last_counter = counter;
    names.insert(std::move(n));
  }
  CHECK(names.size() == 10000);
  CHECK(counter_increases);
}

TEST_CASE("the task name check of this test rejects other shapes", "[spool_file]") {
  CHECK(task_name_fields("uwsgi_spoolfile_on_h_1_2_3_4_5").size() == 6);
  CHECK(task_name_fields("uwsgi_spoolfile_on_my-host_1_2_3_4_5").size() == 6);
  CHECK(task_name_fields("uwsgi_spoolfile_on_1_2_3_4_5").empty());
  CHECK(task_name_fields("uwsgi_spoolfile_on_h_1_2_3_4_x").empty());
  CHECK(task_name_fields("uwsgi_spoolfile_on_a_b_1_2_3_4_5").empty());
  CHECK(task_name_fields("uwsgi_spoolfile_on_h_1_2_3_4_").empty());
  CHECK(task_name_fields("spoolfile_on_h_1_2_3_4_5").empty());
}

TEST_CASE("write_file_atomically writes through a temp name and sets the mtime to the nanosecond", "[spool_file]") {
  spoold::unit::temp_dir tmp;
  auto dir = spoold::open_at(AT_FDCWD, tmp.path(), O_RDONLY | O_DIRECTORY);
  REQUIRE(dir.ok());
  const std::string name = "uwsgi_spoolfile_on_test_1";
  const std::string path = tmp / name;

  SECTION("new file with a due time") {
    const std::int64_t due = 1'900'000'000'123'456'789;
    spoold::write_options options;
    options.mtime_ns = due;
    auto w = spoold::write_file_atomically(dir->get(), tmp.path(), name, "\x11\x00\x00\x00payload"s, options);
    REQUIRE(w.ok());
    CHECK(spoold::unit::read_file(path) == "\x11\x00\x00\x00payload"s);
    CHECK(spoold::unit::mtime_ns_of(path) == due);
    CHECK((spoold::unit::lstat_of(path).st_mode & 07777) == 0600);
    CHECK(spoold::unit::list_dir(tmp.path()) == std::vector<std::string>{name});
  }
  SECTION("without a due time the mtime is now, and no sync still works") {
    const std::int64_t before = spoold::now_ns();
    spoold::write_options options;
    options.sync = false;
    options.mode = 0640;
    REQUIRE(spoold::write_file_atomically(dir->get(), tmp.path(), name, "x", options).ok());
    const std::int64_t after = spoold::now_ns();
    // The file system clock may lag the wall clock by a tick.
    CHECK(spoold::unit::mtime_ns_of(path) >= before - 20'000'000);
    CHECK(spoold::unit::mtime_ns_of(path) <= after);
    CHECK((spoold::unit::lstat_of(path).st_mode & 07777) == 0640);
    CHECK(spoold::unit::list_dir(tmp.path()) == std::vector<std::string>{name});
  }
  SECTION("replacing a file gives a new inode with the new bytes") {
    spoold::unit::write_file(path, "old");
    const auto old_ino = spoold::unit::lstat_of(path).st_ino;
    // Keep the old file open: a reader of the old version still sees it whole.
    auto old_fd = spoold::open_at(AT_FDCWD, path, O_RDONLY);
    REQUIRE(old_fd.ok());
    REQUIRE(spoold::write_file_atomically(dir->get(), tmp.path(), name, "new contents", {}).ok());
    CHECK(spoold::unit::read_file(path) == "new contents");
    CHECK(spoold::unit::lstat_of(path).st_ino != old_ino);
    char buf[8] = {};
    CHECK(::pread(old_fd->get(), buf, sizeof buf, 0) == 3);
    CHECK(std::string(buf, 3) == "old");
    CHECK(spoold::unit::list_dir(tmp.path()) == std::vector<std::string>{name});
  }
  SECTION("a failed rename removes its temp file and names the directory") {
    REQUIRE(::mkdir(path.c_str(), 0700) == 0);
    REQUIRE(::mkdir((path + "/sub").c_str(), 0700) == 0);
    auto w = spoold::write_file_atomically(dir->get(), tmp.path(), name, "x", {});
    REQUIRE_FALSE(w.ok());
    CHECK_THAT(w.err().message, Catch::Contains(tmp.path()) && Catch::Contains(name));
    CHECK(spoold::unit::list_dir(tmp.path()) == std::vector<std::string>{name});
  }
  SECTION("an existing temp file of the same name is not clobbered") {
    const std::string temp = tmp / (".spoold-tmp-" + name);
    spoold::unit::write_file(temp, "someone else's");
    auto w = spoold::write_file_atomically(dir->get(), tmp.path(), name, "x", {});
    REQUIRE_FALSE(w.ok());
    CHECK_THAT(w.err().message, Catch::Contains(tmp.path()));
    CHECK(spoold::unit::read_file(temp) == "someone else's");
    CHECK_FALSE(spoold::unit::exists(path));
  }
}

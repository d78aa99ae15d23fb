// The producer library through its C API and its C++ wrapper: what it
// writes must parse back with the host's own reader, byte for byte.
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "posix.hpp"
#include "spool_file.hpp"
#include "spoold/client.h"
#include "spoold/client.hpp"

namespace fs = std::filesystem;

namespace {

struct scratch_dir {
  scratch_dir() {
    std::string pattern = (fs::temp_directory_path() / "spoold-client-test-XXXXXX").string();
    REQUIRE(::mkdtemp(pattern.data()) != nullptr);
    path = pattern;
  }
  ~scratch_dir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  scratch_dir(const scratch_dir&) = delete;
  scratch_dir& operator=(const scratch_dir&) = delete;
  fs::path path;
};

struct builder_ptr {
  builder_ptr() : b(spoold_task_builder_new()) { REQUIRE(b != nullptr); }
  ~builder_ptr() { spoold_task_builder_free(b); }
  builder_ptr(const builder_ptr&) = delete;
  builder_ptr& operator=(const builder_ptr&) = delete;
  spoold_task_builder* b;
};

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  REQUIRE(in);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void add(spoold_task_builder* b, const std::string& k, const std::string& v) {
  REQUIRE(spoold_task_builder_add_arg(b, k.data(), k.size(), v.data(), v.size()) == SPOOLD_CLIENT_OK);
}

struct enqueued {
  int code;
  std::string id;
  std::string error;
};

enqueued enqueue(const fs::path& dir, const spoold_task_builder* b) {
  char id[SPOOLD_CLIENT_ID_MAX];
  char err[512];
  id[0] = '\0';
  const int code = spoold_enqueue(dir.c_str(), b, id, sizeof id, err, sizeof err);
  return {code, id, err};
}

std::vector<std::string> names_in(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
  return out;
}

std::int64_t file_mtime_ns(const fs::path& p) {
  struct stat st {};
  REQUIRE(::lstat(p.c_str(), &st) == 0);
  return spoold::mtime_ns(st);
}

}  // namespace

TEST_CASE("client: a task round-trips through the host's parser", "[client]") {
  scratch_dir dir;
  builder_ptr b;
  const std::string binary_key("k\0\xff", 3);
  const std::string binary_value("\x00\x01\x02\xfe\xff", 5);
  add(b.b, "type", "mail");
  add(b.b, binary_key, binary_value);
  add(b.b, "empty", "");
  REQUIRE(spoold_task_builder_add_arg(b.b, "nullval", 7, nullptr, 0) == SPOOLD_CLIENT_OK);
  const std::string body("{\"to\":\"a@b\"}\0tail", 17);
  REQUIRE(spoold_task_builder_set_body(b.b, body.data(), body.size()) == SPOOLD_CLIENT_OK);

  const auto r = enqueue(dir.path, b.b);
  REQUIRE(r.code == SPOOLD_CLIENT_OK);
  REQUIRE(r.error.empty());
  CHECK(spoold::is_task_name(r.id));
  CHECK(names_in(dir.path) == std::vector<std::string>{r.id});  // no temporary left behind

  const fs::path file = dir.path / r.id;
  struct stat st {};
  REQUIRE(::lstat(file.c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0600);
  const std::string bytes = read_file(file);
  const auto parsed = spoold::parse_spool_file(bytes);
  REQUIRE(parsed.ok());
  REQUIRE(parsed.task->args.size() == 4);
  CHECK(parsed.task->args[0].key == "type");
  CHECK(parsed.task->args[0].value == "mail");
  CHECK(parsed.task->args[1].key == binary_key);
  CHECK(parsed.task->args[1].value == binary_value);
  CHECK(parsed.task->args[2].value.empty());
  CHECK(parsed.task->args[3].key == "nullval");
  CHECK(parsed.task->body == body);
  CHECK(static_cast<unsigned char>(bytes[0]) == 17);
  CHECK(bytes[3] == '\0');

  // The builder is reusable: a second call writes a second task.
  const auto again = enqueue(dir.path, b.b);
  REQUIRE(again.code == SPOOLD_CLIENT_OK);
  CHECK(again.id != r.id);
  CHECK(read_file(dir.path / again.id) == bytes);
}

TEST_CASE("client: the args block may be exactly 65535 bytes, not one more", "[client]") {
  scratch_dir dir;
  SECTION("exactly 65535") {
    builder_ptr b;
    add(b.b, "k", std::string(65535 - 4 - 1, 'v'));
    const auto r = enqueue(dir.path, b.b);
    REQUIRE(r.code == SPOOLD_CLIENT_OK);
    const std::string bytes = read_file(dir.path / r.id);
    CHECK(bytes.size() == 4 + 65535);
    CHECK(static_cast<unsigned char>(bytes[1]) == 0xff);
    CHECK(static_cast<unsigned char>(bytes[2]) == 0xff);
    REQUIRE(spoold::parse_spool_file(bytes).ok());
  }
  SECTION("65536 is refused and nothing is written") {
    builder_ptr b;
    add(b.b, "k", std::string(65535 - 4 - 1 + 1, 'v'));
    const auto r = enqueue(dir.path, b.b);
    CHECK(r.code == SPOOLD_CLIENT_ETOOBIG);
    CHECK(r.error.find("65536") != std::string::npos);
    CHECK(r.error.find("body") != std::string::npos);
    CHECK(!fs::exists(dir.path / "uwsgi_spoolfile_on_x"));
    CHECK(names_in(dir.path).empty());
  }
  SECTION("the keys the builder adds count too") {
    builder_ptr b;
    add(b.b, "k", std::string(65535 - 4 - 1, 'v'));
    REQUIRE(spoold_task_builder_set_priority(b.b, 1) == SPOOLD_CLIENT_OK);
    CHECK(enqueue(dir.path, b.b).code == SPOOLD_CLIENT_ETOOBIG);
  }
}

TEST_CASE("client: a priority puts the task in its numeric subdirectory", "[client]") {
  scratch_dir dir;
  builder_ptr b;
  add(b.b, "a", "1");
  REQUIRE(spoold_task_builder_set_priority(b.b, 7) == SPOOLD_CLIENT_OK);
  const auto r = enqueue(dir.path, b.b);
  REQUIRE(r.code == SPOOLD_CLIENT_OK);
  CHECK(!fs::exists(dir.path / r.id));
  const fs::path file = dir.path / "7" / r.id;
  REQUIRE(fs::is_regular_file(file));
  struct stat st {};
  REQUIRE(::lstat((dir.path / "7").c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0700);
  const std::string bytes = read_file(file);
  const auto parsed = spoold::parse_spool_file(bytes);
  REQUIRE(parsed.ok());
  CHECK(parsed.task->arg("priority") == std::optional<std::string_view>("7"));

  builder_ptr too_big;
  CHECK(spoold_task_builder_set_priority(too_big.b, 1'000'000'000) == SPOOLD_CLIENT_EINVAL);

  builder_ptr twice;
  add(twice.b, "priority", "3");
  REQUIRE(spoold_task_builder_set_priority(twice.b, 3) == SPOOLD_CLIENT_OK);
  const auto clash = enqueue(dir.path, twice.b);
  CHECK(clash.code == SPOOLD_CLIENT_EINVAL);
  CHECK(clash.error.find("priority") != std::string::npos);

  // As with uWSGI's spool(), a numeric priority key alone places the file too.
  builder_ptr by_key;
  add(by_key.b, "priority", "12");
  const auto keyed = enqueue(dir.path, by_key.b);
  REQUIRE(keyed.code == SPOOLD_CLIENT_OK);
  CHECK(fs::is_regular_file(dir.path / "12" / keyed.id));
}

TEST_CASE("client: at and delay set the at key and the exact mtime", "[client]") {
  scratch_dir dir;
  SECTION("at in nanoseconds") {
    builder_ptr b;
    const std::int64_t when = (spoold::now_ns() / 1'000'000'000 + 3600) * 1'000'000'000 + 123'456'789;
    REQUIRE(spoold_task_builder_set_at_ns(b.b, when) == SPOOLD_CLIENT_OK);
    const auto r = enqueue(dir.path, b.b);
    REQUIRE(r.code == SPOOLD_CLIENT_OK);
    CHECK(file_mtime_ns(dir.path / r.id) == when);
    const std::string bytes = read_file(dir.path / r.id);
    const auto parsed = spoold::parse_spool_file(bytes);
    REQUIRE(parsed.ok());
    CHECK(parsed.task->arg("at") == std::optional<std::string_view>(std::to_string(when / 1'000'000'000)));
  }
  SECTION("at in fractional seconds") {
    builder_ptr b;
    REQUIRE(spoold_task_builder_set_at(b.b, 1700000000.5) == SPOOLD_CLIENT_OK);
    const auto r = enqueue(dir.path, b.b);
    REQUIRE(r.code == SPOOLD_CLIENT_OK);
    CHECK(file_mtime_ns(dir.path / r.id) == 1'700'000'000'500'000'000);
    CHECK(spoold::parse_spool_file(read_file(dir.path / r.id)).task->arg("at") ==
          std::optional<std::string_view>("1700000000"));
  }
  SECTION("delay counts from the enqueue call") {
    builder_ptr b;
    REQUIRE(spoold_task_builder_set_delay_ms(b.b, 500) == SPOOLD_CLIENT_OK);
    const std::int64_t before = spoold::now_ns();
    const auto r = enqueue(dir.path, b.b);
    const std::int64_t after = spoold::now_ns();
    REQUIRE(r.code == SPOOLD_CLIENT_OK);
    const std::int64_t mtime = file_mtime_ns(dir.path / r.id);
    CHECK(mtime >= before + 500'000'000);
    CHECK(mtime <= after + 500'000'000);
  }
  SECTION("out-of-range instants are refused") {
    builder_ptr b;
    CHECK(spoold_task_builder_set_at(b.b, -1.0) == SPOOLD_CLIENT_EINVAL);
    CHECK(spoold_task_builder_set_at(b.b, 1e300) == SPOOLD_CLIENT_EINVAL);
    CHECK(spoold_task_builder_set_at_ns(b.b, -5) == SPOOLD_CLIENT_EINVAL);
    CHECK(spoold_task_builder_set_delay_ms(b.b, ~std::uint64_t{0}) == SPOOLD_CLIENT_EINVAL);
  }
  SECTION("at given as an option and as a key is refused") {
    builder_ptr b;
    add(b.b, "at", "1700000000");
    REQUIRE(spoold_task_builder_set_at(b.b, 1700000001) == SPOOLD_CLIENT_OK);
    const auto r = enqueue(dir.path, b.b);
    CHECK(r.code == SPOOLD_CLIENT_EINVAL);
    CHECK(names_in(dir.path).empty());
  }
}

TEST_CASE("client: failures come back as codes with a message", "[client]") {
  SECTION("a directory under a regular file cannot be created") {
    builder_ptr b;
    const auto r = enqueue("/etc/passwd/x", b.b);
    CHECK(r.code == SPOOLD_CLIENT_EIO);
    CHECK(r.error.find("/etc/passwd") != std::string::npos);
  }
  SECTION("NULL and empty arguments") {
    builder_ptr b;
    char err[128];
    CHECK(spoold_enqueue(nullptr, b.b, nullptr, 0, err, sizeof err) == SPOOLD_CLIENT_EINVAL);
    CHECK(std::string(err).find("queue_dir") != std::string::npos);
    CHECK(spoold_enqueue("/tmp", nullptr, nullptr, 0, nullptr, 0) == SPOOLD_CLIENT_EINVAL);
    CHECK(spoold_task_builder_add_arg(b.b, "", 0, "v", 1) == SPOOLD_CLIENT_EINVAL);
    CHECK(spoold_task_builder_add_arg(b.b, nullptr, 3, "v", 1) == SPOOLD_CLIENT_EINVAL);
    CHECK(spoold_task_builder_add_arg(b.b, "k", 1, nullptr, 1) == SPOOLD_CLIENT_EINVAL);
    CHECK(spoold_task_builder_add_arg(nullptr, "k", 1, "v", 1) == SPOOLD_CLIENT_EINVAL);
    CHECK(spoold_task_builder_set_body(b.b, nullptr, 4) == SPOOLD_CLIENT_EINVAL);
    CHECK(spoold_task_builder_set_sync(nullptr, 1) == SPOOLD_CLIENT_EINVAL);
    spoold_task_builder_free(nullptr);
  }
  SECTION("an id buffer too small is refused before anything is written") {
    scratch_dir dir;
    builder_ptr b;
    char id[8];
    char err[256];
    CHECK(spoold_enqueue(dir.path.c_str(), b.b, id, sizeof id, err, sizeof err) == SPOOLD_CLIENT_ERANGE);
    CHECK(std::string(err).find("SPOOLD_CLIENT_ID_MAX") != std::string::npos);
    CHECK(names_in(dir.path).empty());
    // No id wanted at all is fine.
    CHECK(spoold_enqueue(dir.path.c_str(), b.b, nullptr, 0, nullptr, 0) == SPOOLD_CLIENT_OK);
    CHECK(names_in(dir.path).size() == 1);
  }
  SECTION("a short error buffer gets a truncated, terminated message") {
    builder_ptr b;
    char err[6];
    std::fill(std::begin(err), std::end(err), 'x');
    CHECK(spoold_enqueue("/etc/passwd/x", b.b, nullptr, 0, err, sizeof err) == SPOOLD_CLIENT_EIO);
    CHECK(err[5] == '\0');
    CHECK(std::string(err).size() == 5);
  }
  SECTION("every code has a description") {
    for (int code : {SPOOLD_CLIENT_OK, SPOOLD_CLIENT_EINVAL, SPOOLD_CLIENT_ETOOBIG, SPOOLD_CLIENT_EIO,
                     SPOOLD_CLIENT_ENOMEM, SPOOLD_CLIENT_ERANGE, -99}) {
      CHECK(std::string(spoold_client_strerror(code)).size() > 3);
    }
  }
}

TEST_CASE("client: a missing queue directory is created private", "[client]") {
  scratch_dir dir;
  builder_ptr b;
  REQUIRE(spoold_task_builder_set_sync(b.b, 0) == SPOOLD_CLIENT_OK);
  const fs::path queue = dir.path / "a" / "b";
  const auto r = enqueue(queue, b.b);
  REQUIRE(r.code == SPOOLD_CLIENT_OK);
  CHECK(fs::is_regular_file(queue / r.id));
  struct stat st {};
  REQUIRE(::lstat(queue.c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0700);
}

TEST_CASE("client: the C++ wrapper returns the id or throws with the message", "[client]") {
  scratch_dir dir;
  spoold::client::task t;
  t.arg("type", "report").body("payload").priority(2).sync(false);
  const auto when = std::chrono::system_clock::now() + std::chrono::hours(1);
  t.at(when);
  const std::string id = spoold::client::enqueue(dir.path.string(), t);
  const fs::path file = dir.path / "2" / id;
  const std::string bytes = read_file(file);
  const auto parsed = spoold::parse_spool_file(bytes);
  REQUIRE(parsed.ok());
  CHECK(parsed.task->arg("type") == std::optional<std::string_view>("report"));
  CHECK(parsed.task->body == "payload");
  CHECK(file_mtime_ns(file) ==
        std::chrono::duration_cast<std::chrono::nanoseconds>(when.time_since_epoch()).count());

  spoold::client::task big;
  big.arg("k", std::string(70000, 'x'));
  try {
    (void)spoold::client::enqueue(dir.path.string(), big);
    FAIL("a task over 64 KiB of args was accepted");
  } catch (const spoold::client::enqueue_error& e) {
    CHECK(e.code() == SPOOLD_CLIENT_ETOOBIG);
    CHECK(std::string(e.what()).find("body") != std::string::npos);
  }
  CHECK_THROWS_AS(spoold::client::task().arg("", "v"), spoold::client::enqueue_error);
  CHECK_THROWS_AS(spoold::client::task().delay(std::chrono::milliseconds(-1)), spoold::client::enqueue_error);
  CHECK_THROWS_AS(spoold::client::enqueue("/etc/passwd/x", spoold::client::task()), spoold::client::enqueue_error);
}

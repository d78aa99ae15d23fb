// The misbehaving fixture plugins of tests/plugins do what the host's tests
// rely on them to do; a fixture that silently behaved would let a host test
// pass without testing anything.
#include <dlfcn.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <cmath>
#include <ctime>
#include <string>
#include <vector>

#include "../plugins/plugin_harness.hpp"

using spoold::Status;
using spoold::test::code_of;
using spoold::test::fixture_plugin_path;
using spoold::test::plugin_instance;
using spoold::test::read_lines;
using spoold::test::task_spec;
using spoold::test::temp_dir;

namespace {

// Runs how=<how> through fx_crash in a child process; returns the child's
// wait status, or nullopt if it still runs after timeout (it is then killed).
std::optional<int> crash_in_child(const std::string& how, const std::string& record_file,
                                  std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  const pid_t pid = spoold::test::run_in_child([&] {
    plugin_instance plugin(fixture_plugin_path("fx_crash"));
    if (plugin.init({{"record_file", record_file}}).code != 0) ::_exit(2);
    task_spec task;
    task.args = {{"how", how}};
    plugin.handle(task);
  });
  const auto status = spoold::test::wait_for_child(pid, timeout);
  if (!status) spoold::test::kill_child(pid);
  return status;
}

// The record line with the value of t replaced by "*", or a line saying
// that t is missing or not "<seconds>.<6 digits>" within the last minute.
std::string without_time(const std::string& line) {
  const std::size_t start = line.find(" t=");
  if (start == std::string::npos) return "no t= in: " + line;
  const std::size_t value = start + 3;
  const std::size_t end = std::min(line.find(' ', value), line.size());
  const std::string t = line.substr(value, end - value);
  const std::size_t dot = t.find('.');
  const double now = static_cast<double>(std::time(nullptr));
  if (dot == std::string::npos || t.size() - dot != 7 || std::abs(std::stod(t) - now) > 60) return "bad t= in: " + line;
  return line.substr(0, value) + "*" + line.substr(end);
}

}  // namespace

TEST_CASE("fx_record records each call and returns the status asked for", "[plugins][fixtures]") {
  temp_dir dir;
  plugin_instance plugin(fixture_plugin_path("fx_record"));
  REQUIRE(plugin.init({{"record_file", dir / "record"}}).code == 0);

  task_spec task;
  task.id = "uwsgi_spoolfile_on_h_1_1_1_1_1";
  task.attempt = 2;
  task.args = {{"k", "v"}, {"sp ace", "a b\\\n"}, {"body_sha", "1"}};
  task.body = "abc";
  CHECK(plugin.handle(task).code == code_of(Status::Ok));

  const auto with = [](std::vector<std::pair<std::string, std::string>> args) {
    task_spec t;
    t.args = std::move(args);
    return t;
  };
  CHECK(plugin.handle(with({{"status", "retry"}})).code == code_of(Status::Retry));
  CHECK(plugin.handle(with({{"status", "fail"}})).code == code_of(Status::Fail));
  CHECK(plugin.handle(with({{"status", "ignore"}})).code == code_of(Status::Ignore));
  CHECK(plugin.handle(with({{"status", "ok"}, {"code", "7"}})).code == 7);
  const auto bad = plugin.handle(with({{"status", "maybe"}}));
  CHECK(bad.code == SPOOLD_HANDLE_THREW);
  CHECK(bad.error.find("'maybe'") != std::string::npos);

  const auto lines = read_lines(dir / "record");
  REQUIRE(lines.size() == 5);
  const std::string pid = std::to_string(::getpid());
  CHECK(without_time(lines[0]) == "uwsgi_spoolfile_on_h_1_1_1_1_1 attempt=2 pid=" + pid +
                                      " k=v sp\\x20ace=a\\x20b\\x5c\\x0a body_sha=1 body_len=3 "
                                      "body_fnv1a=e71fa2190541574b t=* result=ok");
  CHECK(without_time(lines[1]).ends_with(" status=retry body_len=0 t=* result=retry"));
  CHECK(without_time(lines[2]).ends_with(" result=fail"));
  CHECK(without_time(lines[3]).ends_with(" result=ignore"));
  CHECK(without_time(lines[4]).ends_with(" code=7 body_len=0 t=* result=7"));
}

TEST_CASE("fx_record hashes binary bodies byte for byte", "[plugins][fixtures]") {
  temp_dir dir;
  plugin_instance plugin(fixture_plugin_path("fx_record"));
  REQUIRE(plugin.init({{"record_file", dir / "record"}}).code == 0);
  task_spec task;
  task.args = {{"body_sha", "1"}};
  for (int i = 0; i < 3; ++i) task.body += std::string("\0\1\2\xff\n", 5);
  REQUIRE(plugin.handle(task).code == code_of(Status::Ok));
  const auto lines = read_lines(dir / "record");
  REQUIRE(lines.size() == 1);
  CHECK(without_time(lines[0]).ends_with(" body_len=15 body_fnv1a=d0b26464a8def7ad t=* result=ok"));
}

TEST_CASE("fx_record with only_type ignores the other types and sleeps on request", "[plugins][fixtures]") {
  temp_dir dir;
  plugin_instance plugin(fixture_plugin_path("fx_record"));
  REQUIRE(plugin.init({{"record_file", dir / "record"}, {"only_type", "a"}}).code == 0);
  task_spec other;
  other.args = {{"type", "b"}, {"sleep_ms", "1000"}};
  auto start = std::chrono::steady_clock::now();
  CHECK(plugin.handle(other).code == code_of(Status::Ignore));
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::milliseconds(500));

  task_spec mine;
  mine.args = {{"type", "a"}, {"sleep_ms", "60"}};
  start = std::chrono::steady_clock::now();
  CHECK(plugin.handle(mine).code == code_of(Status::Ok));
  CHECK(std::chrono::steady_clock::now() - start >= std::chrono::milliseconds(60));

  const auto lines = read_lines(dir / "record");
  REQUIRE(lines.size() == 2);
  CHECK(lines[0].ends_with(" result=ignore"));
  CHECK(lines[1].ends_with(" result=ok"));
}

TEST_CASE("fx_record refuses to start without record_file", "[plugins][fixtures]") {
  plugin_instance plugin(fixture_plugin_path("fx_record"));
  CHECK(plugin.init({}).code == -1);
}

TEST_CASE("fx_crash kills its process the way the arg how says", "[plugins][fixtures]") {
  temp_dir dir;
  const std::string record = dir / "record";

  auto status = crash_in_child("segv", record);
  REQUIRE(status);
  CHECK(WIFSIGNALED(*status));
  CHECK(WTERMSIG(*status) == SIGSEGV);

  status = crash_in_child("abort", record);
  REQUIRE(status);
  CHECK(WIFSIGNALED(*status));
  CHECK(WTERMSIG(*status) == SIGABRT);

  status = crash_in_child("exit", record);
  REQUIRE(status);
  CHECK(WIFEXITED(*status));
  CHECK(WEXITSTATUS(*status) == 3);

  CHECK_FALSE(crash_in_child("hang", record, std::chrono::milliseconds(300)));

  status = crash_in_child("nothing", record);
  REQUIRE(status);
  CHECK(WIFEXITED(*status));
  CHECK(WEXITSTATUS(*status) == 0);

  // One record per try, written before the misbehaviour.
  const auto lines = read_lines(record);
  REQUIRE(lines.size() == 5);
  CHECK(lines[0].find(" how=segv ") != std::string::npos);
  CHECK(lines[3].find(" how=hang ") != std::string::npos);
}

TEST_CASE("fx_crash throws and returns an unknown status on request", "[plugins][fixtures]") {
  plugin_instance plugin(fixture_plugin_path("fx_crash"));
  REQUIRE(plugin.init({}).code == 0);
  const auto with_how = [](const std::string& how) {
    task_spec task;
    task.args = {{"how", how}};
    return task;
  };
  const auto threw = plugin.handle(with_how("throw"));
  CHECK(threw.code == SPOOLD_HANDLE_THREW);
  CHECK(threw.error == "fixture threw: boom");
  const auto threw_other = plugin.handle(with_how("throw_other"));
  CHECK(threw_other.code == SPOOLD_HANDLE_THREW);
  CHECK(threw_other.error.find("non-standard") != std::string::npos);
  CHECK(plugin.handle(with_how("code")).code == 7);
  CHECK(plugin.handle(task_spec{}).code == code_of(Status::Ok));
}

TEST_CASE("fx_init_crash dies of SIGSEGV in init after recording it", "[plugins][fixtures]") {
  temp_dir dir;
  const pid_t pid = spoold::test::run_in_child([&] {
    plugin_instance plugin(fixture_plugin_path("fx_init_crash"));
    plugin.init({{"record_file", dir / "record"}}, "crashy");
  });
  const auto status = spoold::test::wait_for_child(pid, std::chrono::seconds(10));
  REQUIRE(status);
  CHECK(WIFSIGNALED(*status));
  CHECK(WTERMSIG(*status) == SIGSEGV);
  const auto lines = read_lines(dir / "record");
  REQUIRE(lines.size() == 1);
  CHECK(lines[0] == "init queue=crashy pid=" + std::to_string(pid));
}

TEST_CASE("fx_init_throw refuses its options in init", "[plugins][fixtures]") {
  temp_dir dir;
  plugin_instance plugin(fixture_plugin_path("fx_init_throw"));
  const auto result = plugin.init({{"record_file", dir / "record"}}, "refused");
  CHECK(result.code == -1);
  CHECK(result.error == "fx_init_throw refuses these options");
  CHECK(read_lines(dir / "record").size() == 1);
}

TEST_CASE("fx_create_throw cannot be instantiated", "[plugins][fixtures]") {
  CHECK_THROWS_WITH(plugin_instance(fixture_plugin_path("fx_create_throw")),
                    Catch::Contains("fx_create_throw: the constructor refuses"));
}

TEST_CASE("the host's loader refuses each ABI fixture for the reason its name says", "[plugins][fixtures]") {
  const auto refusal = [](const std::string& name) {
    spoold::host_config host;
    host.plugin_dir = fixture_plugin_path(name).parent_path().string();
    auto loaded = spoold::load_plugin(host, name);
    REQUIRE_FALSE(loaded.ok());
    return loaded.err().message;
  };
  CHECK_THAT(refusal("fx_wrong_abi"), Catch::Contains("was built for ABI " + std::to_string(SPOOLD_ABI_VERSION + 1) +
                                                      ", this host speaks ABI " + std::to_string(SPOOLD_ABI_VERSION)));
  CHECK_THAT(refusal("fx_small_struct"), Catch::Contains("bytes, expected " + std::to_string(sizeof(spoold_plugin_v1))));
  CHECK_THAT(refusal("fx_null_entry"), Catch::Contains(SPOOLD_ENTRY_SYMBOL "() returned null"));
  CHECK_THAT(refusal("fx_no_entry"), Catch::Contains("exports no " SPOOLD_ENTRY_SYMBOL));
  CHECK_THAT(refusal("fx_create_throw"), Catch::Contains("could not create its instance: fx_create_throw: the constructor refuses"));
  CHECK_NOTHROW(plugin_instance(fixture_plugin_path("fx_record")));
}

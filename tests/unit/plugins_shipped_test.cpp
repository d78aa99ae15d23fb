// The shipped plugins (SPEC section 6), loaded from build/plugins through
// their C entry as a spooler loads them.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include "../plugins/plugin_harness.hpp"

using spoold::Status;
using spoold::test::code_of;
using spoold::test::plugin_instance;
using spoold::test::read_file;
using spoold::test::read_lines;
using spoold::test::shipped_plugin_path;
using spoold::test::task_spec;
using spoold::test::temp_dir;

namespace {

// The line without its "YYYY-MM-DD HH:MM:SS:" prefix, or the line marked
// "<no timestamp>". (No std::regex: GCC 12 warns inside it under ASan.)
std::string after_timestamp(const std::string& line) {
  constexpr std::string_view shape = "dddd-dd-dd dd:dd:dd:";
  bool ok = line.size() >= shape.size();
  for (std::size_t i = 0; ok && i < shape.size(); ++i) {
    ok = shape[i] == 'd' ? (line[i] >= '0' && line[i] <= '9') : line[i] == shape[i];
  }
  return ok ? line.substr(shape.size()) : "<no timestamp>: " + line;
}

task_spec body_task(std::string body) {
  task_spec task;
  task.body = std::move(body);
  return task;
}

task_spec args_task(std::vector<std::pair<std::string, std::string>> args) {
  task_spec task;
  task.args = std::move(args);
  return task;
}

// Restores the working directory the test changed.
class cwd_guard {
 public:
  cwd_guard() : saved_(std::filesystem::current_path()) {}
  ~cwd_guard() { std::filesystem::current_path(saved_); }

 private:
  std::filesystem::path saved_;
};

std::chrono::milliseconds elapsed_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
}

}  // namespace

TEST_CASE("log_writer refuses to start without log_file, naming the option", "[plugins][log_writer]") {
  plugin_instance plugin(shipped_plugin_path("log_writer"));
  const auto result = plugin.init({}, "tasks_a");
  CHECK(result.code == -1);
  CHECK(result.error.find("log_file") != std::string::npos);
  CHECK(result.error.find("tasks_a") != std::string::npos);
}

TEST_CASE("log_writer refuses a log_file it cannot open, naming the file", "[plugins][log_writer]") {
  temp_dir dir;
  plugin_instance plugin(shipped_plugin_path("log_writer"));
  const std::string path = dir / "missing-folder/log.txt";
  const auto result = plugin.init({{"log_file", path}});
  CHECK(result.code == -1);
  CHECK(result.error.find(path) != std::string::npos);
  CHECK(result.error.find("No such file or directory") != std::string::npos);
}

TEST_CASE("log_writer appends the body, or the arg body, after the local time", "[plugins][log_writer]") {
  temp_dir dir;
  plugin_instance plugin(shipped_plugin_path("log_writer"));
  REQUIRE(plugin.init({{"log_file", dir / "log.txt"}}).code == 0);

  CHECK(plugin.handle(body_task("hello world")).code == code_of(Status::Ok));
  CHECK(plugin.handle(args_task({{"body", "from the arg"}})).code == code_of(Status::Ok));
  task_spec both = body_task("the body wins");
  both.args = {{"body", "not this"}};
  CHECK(plugin.handle(both).code == code_of(Status::Ok));
  CHECK(plugin.handle(task_spec{}).code == code_of(Status::Ok));

  const auto lines = read_lines(dir / "log.txt");
  REQUIRE(lines.size() == 4);
  CHECK(after_timestamp(lines[0]) == "hello world");
  CHECK(after_timestamp(lines[1]) == "from the arg");
  CHECK(after_timestamp(lines[2]) == "the body wins");
  CHECK(after_timestamp(lines[3]).empty());
}

TEST_CASE("log_writer resolves a relative log_file against the working directory at init", "[plugins][log_writer]") {
  temp_dir dir;
  plugin_instance plugin(shipped_plugin_path("log_writer"));
  {
    cwd_guard restore;
    std::filesystem::current_path(dir.path());
    REQUIRE(plugin.init({{"log_file", "relative.log"}}).code == 0);
  }
  REQUIRE(plugin.handle(body_task("x")).code == code_of(Status::Ok));
  CHECK(read_lines(dir / "relative.log").size() == 1);
}

TEST_CASE("log_writer turns a failed write into a retry naming the file", "[plugins][log_writer]") {
  temp_dir dir;
  std::filesystem::create_directory(dir / "logs");
  const std::string path = dir / "logs/log.txt";
  plugin_instance plugin(shipped_plugin_path("log_writer"));
  REQUIRE(plugin.init({{"log_file", path}}).code == 0);
  std::filesystem::remove_all(dir / "logs");

  const auto result = plugin.handle(body_task("lost"));
  CHECK(result.code == code_of(Status::Retry));
  CHECK(result.error.find(path) != std::string::npos);
  CHECK(result.error.find("No such file or directory") != std::string::npos);
}

TEST_CASE("log_writer lines from concurrent spooler processes never interleave", "[plugins][log_writer]") {
  temp_dir dir;
  const std::string path = dir / "log.txt";
  constexpr int processes = 4;
  constexpr int lines_each = 200;
  constexpr std::size_t line_size = 6000;  // above PIPE_BUF and a page: only O_APPEND keeps it whole

  std::vector<pid_t> children;
  for (int p = 0; p < processes; ++p) {
    children.push_back(spoold::test::run_in_child([&] {
      plugin_instance plugin(shipped_plugin_path("log_writer"));
      if (plugin.init({{"log_file", path}}).code != 0) ::_exit(2);
      const task_spec task = body_task(std::string(line_size, static_cast<char>('a' + p)));
      for (int i = 0; i < lines_each; ++i) {
        if (plugin.handle(task).code != code_of(Status::Ok)) ::_exit(3);
      }
    }));
  }
  for (const pid_t child : children) {
    const auto status = spoold::test::wait_for_child(child, std::chrono::seconds(60));
    REQUIRE(status);
    CHECK(WIFEXITED(*status));
    CHECK(WEXITSTATUS(*status) == 0);
  }

  const auto lines = read_lines(path);
  CHECK(lines.size() == static_cast<std::size_t>(processes * lines_each));
  int broken = 0;
  for (const std::string& line : lines) {
    const std::string text = after_timestamp(line);
    if (text.size() != line_size || text.find_first_not_of(text.front()) != std::string::npos) ++broken;
  }
  CHECK(broken == 0);
}

TEST_CASE("dispatch refuses bad options with what to write instead", "[plugins][dispatch]") {
  temp_dir dir;
  SECTION("no log_file") {
    plugin_instance plugin(shipped_plugin_path("dispatch"));
    const auto result = plugin.init({{"types", "a", 0}});
    CHECK(result.code == -1);
    CHECK(result.error.find("log_file") != std::string::npos);
  }
  SECTION("types given as a string") {
    plugin_instance plugin(shipped_plugin_path("dispatch"));
    const auto result = plugin.init({{"log_file", dir / "log.txt"}, {"types", "a"}});
    CHECK(result.code == -1);
    CHECK(result.error.find("array") != std::string::npos);
  }
  SECTION("an empty type") {
    plugin_instance plugin(shipped_plugin_path("dispatch"));
    const auto result = plugin.init({{"log_file", dir / "log.txt"}, {"types", "a", 0}, {"types", "", 1}});
    CHECK(result.code == -1);
    CHECK(result.error.find("empty") != std::string::npos);
  }
}

TEST_CASE("dispatch handles types a and b by default and ignores the others", "[plugins][dispatch]") {
  temp_dir dir;
  plugin_instance plugin(shipped_plugin_path("dispatch"));
  REQUIRE(plugin.init({{"log_file", dir / "log.txt"}}).code == 0);

  CHECK(plugin.handle(body_task(R"({"type": "a", "message": "first"})")).code == code_of(Status::Ok));
  CHECK(plugin.handle(body_task(R"({"type": "c", "message": "not mine"})")).code == code_of(Status::Ignore));
  CHECK(plugin.handle(body_task(R"({"message": "second", "type": "b", "extra": [1]})")).code ==
        code_of(Status::Fail));
  CHECK(plugin.handle(body_task(R"({"message": "second", "type": "b", "extra": 1})")).code == code_of(Status::Ok));

  const auto lines = read_lines(dir / "log.txt");
  REQUIRE(lines.size() == 2);
  CHECK(after_timestamp(lines[0]) == "a:first");
  CHECK(after_timestamp(lines[1]) == "b:second");
}

TEST_CASE("dispatch routes the types of its option types", "[plugins][dispatch]") {
  temp_dir dir;
  plugin_instance plugin(shipped_plugin_path("dispatch"));
  REQUIRE(plugin.init({{"log_file", dir / "log.txt"}, {"types", "mail", 0}, {"types", "sms", 1}}).code == 0);
  CHECK(plugin.handle(body_task(R"({"type":"a","message":"x"})")).code == code_of(Status::Ignore));
  CHECK(plugin.handle(body_task(R"({"type":"sms","message":"y"})")).code == code_of(Status::Ok));
  const auto lines = read_lines(dir / "log.txt");
  REQUIRE(lines.size() == 1);
  CHECK(after_timestamp(lines[0]) == "sms:y");
}

TEST_CASE("dispatch takes type and message from the args when the body is empty", "[plugins][dispatch]") {
  temp_dir dir;
  plugin_instance plugin(shipped_plugin_path("dispatch"));
  REQUIRE(plugin.init({{"log_file", dir / "log.txt"}}).code == 0);
  CHECK(plugin.handle(args_task({{"type", "a"}, {"message", "from args"}})).code == code_of(Status::Ok));
  CHECK(plugin.handle(args_task({{"type", "b"}})).code == code_of(Status::Ok));
  CHECK(plugin.handle(args_task({{"type", "z"}})).code == code_of(Status::Ignore));
  const auto untyped = plugin.handle(args_task({{"message", "no type"}}));
  CHECK(untyped.code == code_of(Status::Fail));
  CHECK(untyped.error.rfind("no type: send a JSON body", 0) == 0);

  const auto lines = read_lines(dir / "log.txt");
  REQUIRE(lines.size() == 2);
  CHECK(after_timestamp(lines[0]) == "a:from args");
  CHECK(after_timestamp(lines[1]) == "b:");
}

TEST_CASE("dispatch decodes JSON escapes and scalar messages", "[plugins][dispatch]") {
  temp_dir dir;
  plugin_instance plugin(shipped_plugin_path("dispatch"));
  REQUIRE(plugin.init({{"log_file", dir / "log.txt"}}).code == 0);

  const std::string escaped = R"({"type":"a","message":"q\"b\\s\/ tab\t \u00e9\u20ac\ud83d\ude00 \u0041"})";
  CHECK(plugin.handle(body_task(escaped)).code == code_of(Status::Ok));
  CHECK(plugin.handle(body_task(" \t\r\n{ \"type\" : \"a\" , \"message\" : -0.5e+10 } \n")).code ==
        code_of(Status::Ok));
  CHECK(plugin.handle(body_task(R"({"type":"a","message":true})")).code == code_of(Status::Ok));
  CHECK(plugin.handle(body_task(R"({"type":"a","message":null})")).code == code_of(Status::Ok));
  CHECK(plugin.handle(body_task(R"({"type":"a"})")).code == code_of(Status::Ok));
  CHECK(plugin.handle(body_task("{\"type\":\"a\",\"message\":\"raw \xc3\xa9 ok\"}")).code == code_of(Status::Ok));

  const auto lines = read_lines(dir / "log.txt");
  REQUIRE(lines.size() == 6);
  CHECK(after_timestamp(lines[0]) == "a:q\"b\\s/ tab\t \xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80 A");
  CHECK(after_timestamp(lines[1]) == "a:-0.5e+10");
  CHECK(after_timestamp(lines[2]) == "a:true");
  CHECK(after_timestamp(lines[3]) == "a:");
  CHECK(after_timestamp(lines[4]) == "a:");
  CHECK(after_timestamp(lines[5]) == "a:raw \xc3\xa9 ok");
}

TEST_CASE("dispatch fails a body that is not a flat JSON object, and gives the reason", "[plugins][dispatch]") {
  const std::string body = GENERATE(as<std::string>{},
                                    "hello",                                  // not JSON
                                    "   \n",                                  // only whitespace
                                    "{",                                      // truncated
                                    R"({"type":"a",})",                       // trailing comma
                                    R"({'type':'a'})",                        // single quotes
                                    R"({"type" "a"})",                        // no colon
                                    R"({"type":"a" "message":"b"})",          // no comma
                                    R"({"type":"a"} x)",                      // trailing bytes
                                    R"({"type":"a"}{})",                      // two objects
                                    R"(["a"])",                               // not an object
                                    R"("a")",                                 // not an object
                                    R"({"type":{"x":1}})",                    // nested object
                                    R"({"type":"a","message":[1]})",          // nested array
                                    R"({"type":"a","type":"b"})",             // duplicate key
                                    R"({"type":"a)",                          // unterminated string
                                    R"({"type":"a\q"})",                      // unknown escape
                                    R"({"type":"\u12G4"})",                   // bad hex
                                    R"({"type":"\u12"})",                     // short \u
                                    R"({"type":"\ud800"})",                   // lone high surrogate
                                    R"({"type":"\ud800\u0041"})",             // high + not low
                                    R"({"type":"\udc00"})",                   // lone low surrogate
                                    R"({"type":"a","n":01})",                 // leading zero
                                    R"({"type":"a","n":1.})",                 // no fraction digits
                                    R"({"type":"a","n":-})",                  // lone minus
                                    R"({"type":"a","n":1e})",                 // no exponent digits
                                    R"({"type":"a","n":+1})",                 // plus sign
                                    R"({"type":"a","n":tru})",                // bad literal
                                    R"({"type":"a","n":NaN})",                // not JSON
                                    R"({type:"a"})",                          // unquoted key
                                    "{\"type\":\"a\x01\"}",                   // raw control character
                                    "{\"type\":\"a\xff\"}",                   // invalid UTF-8
                                    "{\"type\":\"a\xc0\xaf\"}",               // overlong
                                    "{\"type\":\"a\xed\xa0\x80\"}",           // encoded surrogate
                                    "{\"type\":\"a\xe2\x82\"}",               // truncated sequence
                                    "{\"type\":\"a\xf4\x90\x80\x80\"}",       // beyond U+10FFFF
                                    "\xef\xbb\xbf{\"type\":\"a\"}",           // byte order mark
                                    std::string("{\"type\":\"a\"}\0", 13));   // NUL after the object
  CAPTURE(body);
  temp_dir dir;
  plugin_instance plugin(shipped_plugin_path("dispatch"));
  REQUIRE(plugin.init({{"log_file", dir / "log.txt"}}).code == 0);
  const auto result = plugin.handle(body_task(body));
  CHECK(result.code == code_of(Status::Fail));
  CHECK(result.error.rfind("the body is not a JSON object", 0) == 0);
  CHECK(result.error.find("invalid JSON at byte") != std::string::npos);
  CHECK(read_file(dir / "log.txt").empty());
}

TEST_CASE("dispatch fails a JSON object without a type string", "[plugins][dispatch]") {
  const std::string body = GENERATE(as<std::string>{}, "{}", R"({"message":"m"})", R"({"type":1})",
                                    R"({"type":null})", R"({"type":""})");
  CAPTURE(body);
  temp_dir dir;
  plugin_instance plugin(shipped_plugin_path("dispatch"));
  REQUIRE(plugin.init({{"log_file", dir / "log.txt"}}).code == 0);
  const auto result = plugin.handle(body_task(body));
  CHECK(result.code == code_of(Status::Fail));
  CHECK(result.error == "the JSON body has no \"type\" string");
}

TEST_CASE("dispatch turns a failed write into a retry naming the file", "[plugins][dispatch]") {
  temp_dir dir;
  std::filesystem::create_directory(dir / "logs");
  plugin_instance plugin(shipped_plugin_path("dispatch"));
  REQUIRE(plugin.init({{"log_file", dir / "logs/log.txt"}}).code == 0);
  std::filesystem::remove_all(dir / "logs");
  const auto result = plugin.handle(body_task(R"({"type":"a","message":"m"})"));
  CHECK(result.code == code_of(Status::Retry));
  CHECK(result.error.find(dir / "logs/log.txt") != std::string::npos);
}

TEST_CASE("sleep sleeps the ms arg, then returns Ok", "[plugins][sleep]") {
  plugin_instance plugin(shipped_plugin_path("sleep"));
  REQUIRE(plugin.init({}).code == 0);
  auto start = std::chrono::steady_clock::now();
  CHECK(plugin.handle(args_task({{"ms", "80"}})).code == code_of(Status::Ok));
  CHECK(elapsed_since(start) >= std::chrono::milliseconds(80));

  start = std::chrono::steady_clock::now();
  CHECK(plugin.handle(args_task({{"ms", "0"}})).code == code_of(Status::Ok));
  CHECK(plugin.handle(task_spec{}).code == code_of(Status::Ok));
  CHECK(elapsed_since(start) < std::chrono::milliseconds(50));
}

TEST_CASE("sleep uses default_ms when a task has no ms", "[plugins][sleep]") {
  plugin_instance plugin(shipped_plugin_path("sleep"));
  REQUIRE(plugin.init({{"default_ms", "60"}}).code == 0);
  const auto start = std::chrono::steady_clock::now();
  CHECK(plugin.handle(task_spec{}).code == code_of(Status::Ok));
  CHECK(elapsed_since(start) >= std::chrono::milliseconds(60));
}

TEST_CASE("sleep refuses a default_ms that is not milliseconds in range", "[plugins][sleep]") {
  const std::string value = GENERATE(as<std::string>{}, "", "x", "-1", "1.5", "3600001");
  CAPTURE(value);
  plugin_instance plugin(shipped_plugin_path("sleep"));
  const auto result = plugin.init({{"default_ms", value}});
  CHECK(result.code == -1);
  CHECK(result.error.find("default_ms") != std::string::npos);
}

TEST_CASE("sleep fails a task whose ms is not milliseconds in range, and gives the reason", "[plugins][sleep]") {
  const std::string ms = GENERATE(as<std::string>{}, "", "abc", "-1", "+5", " 5", "5 ", "1.5", "0x10", "3600001",
                                  "99999999999999999999999");
  CAPTURE(ms);
  plugin_instance plugin(shipped_plugin_path("sleep"));
  REQUIRE(plugin.init({}).code == 0);
  const auto start = std::chrono::steady_clock::now();
  const auto result = plugin.handle(args_task({{"ms", ms}}));
  CHECK(result.code == code_of(Status::Fail));
  CHECK(elapsed_since(start) < std::chrono::milliseconds(50));
  CHECK(result.error == "the arg ms must be an integer from 0 to 3600000 (milliseconds), not '" + ms + "'");
}

TEST_CASE("exec refuses to start without a command", "[plugins][exec]") {
  plugin_instance plugin(shipped_plugin_path("exec"));
  const auto result = plugin.init({}, "jobs");
  CHECK(result.code == -1);
  CHECK(result.error.find("command") != std::string::npos);
  CHECK(result.error.find("jobs") != std::string::npos);
}

TEST_CASE("exec passes args as environment variables and the body on stdin", "[plugins][exec]") {
  temp_dir dir;
  plugin_instance plugin(shipped_plugin_path("exec"));
  const std::string script =
      R"(printf '%s|%s|%s|%s|%s|%s' "$SPOOLD_ARG_FOO_BAR" "$SPOOLD_ARG_X_Y_" "$SPOOLD_TASK_ID" "$SPOOLD_QUEUE" )"
      R"("$SPOOLD_ATTEMPT" "${SPOOLD_ARG_STALE-unset}" > "$SPOOLD_ARG_OUT"; cat > "$SPOOLD_ARG_OUT.body")";
  REQUIRE(plugin.init({{"command", "sh", 0}, {"command", "-c", 1}, {"command", script, 2}}).code == 0);

  // A variable the spooler inherited must not pose as an arg of the task.
  REQUIRE(::setenv("SPOOLD_ARG_STALE", "inherited", 1) == 0);
  task_spec task;
  task.id = "uwsgi_spoolfile_on_h_1_2_3_4_5";
  task.queue = "mail";
  task.attempt = 2;
  task.args = {{"foo-bar", "first"}, {"out", dir / "out"}, {"Foo.Bar", "last wins"}, {"x\xffy\x01", "odd key"}};
  // Binary, and larger than a pipe buffer, so writing it must interleave
  // with the command reading it.
  for (int i = 0; i < 300000; ++i) task.body += static_cast<char>(i * 7 % 256);
  const auto result = plugin.handle(task);
  ::unsetenv("SPOOLD_ARG_STALE");

  CHECK(result.code == code_of(Status::Ok));
  CHECK(read_file(dir / "out") == "last wins|odd key|uwsgi_spoolfile_on_h_1_2_3_4_5|mail|2|unset");
  CHECK(read_file(dir / "out.body") == task.body);
}

TEST_CASE("exec runs a string command with /bin/sh -c", "[plugins][exec]") {
  temp_dir dir;
  plugin_instance plugin(shipped_plugin_path("exec"));
  REQUIRE(plugin.init({{"command", R"(echo "$SPOOLD_ARG_WORD" | tr a-z A-Z > "$SPOOLD_ARG_OUT")"}}).code == 0);
  CHECK(plugin.handle(args_task({{"word", "shout"}, {"out", dir / "out"}})).code == code_of(Status::Ok));
  CHECK(read_file(dir / "out") == "SHOUT\n");
}

TEST_CASE("exec maps the exit status to a status", "[plugins][exec]") {
  plugin_instance plugin(shipped_plugin_path("exec"));
  REQUIRE(plugin.init({{"command", R"(printf '%s\n' "$SPOOLD_ARG_SAY" >&2; exit "$SPOOLD_ARG_CODE")"}}).code == 0);

  SECTION("0 is Ok") { CHECK(plugin.handle(args_task({{"code", "0"}, {"say", "fine"}})).code == code_of(Status::Ok)); }
  SECTION("75 is Retry, with the stderr tail as the reason") {
    const auto result = plugin.handle(args_task({{"code", "75"}, {"say", "busy now"}}));
    CHECK(result.code == code_of(Status::Retry));
    CHECK(result.error == "command exited with 75 (EX_TEMPFAIL): busy now");
  }
  SECTION("any other code is a Retry with the code and the stderr tail as the reason") {
    const auto result = plugin.handle(args_task({{"code", "3"}, {"say", "boom"}}));
    CHECK(result.code == code_of(Status::Retry));
    CHECK(result.error == "command exited with code 3: boom");
  }
  SECTION("no stderr is said so") {
    const auto result = plugin.handle(args_task({{"code", "1"}}));
    CHECK(result.code == code_of(Status::Retry));
    CHECK(result.error == "command exited with code 1: (no stderr output)");
  }
}

TEST_CASE("exec reports a command killed by a signal", "[plugins][exec]") {
  plugin_instance plugin(shipped_plugin_path("exec"));
  REQUIRE(plugin.init({{"command", "echo about to die >&2; kill -TERM $$"}}).code == 0);
  const auto result = plugin.handle(task_spec{});
  CHECK(result.code == code_of(Status::Retry));
  CHECK(result.error.find("command killed by signal 15 (SIGTERM): about to die") != std::string::npos);
  CHECK(result.error.find("about to die") != std::string::npos);
}

TEST_CASE("exec keeps only the last 2 KiB of stderr", "[plugins][exec]") {
  plugin_instance plugin(shipped_plugin_path("exec"));
  REQUIRE(plugin.init({{"command", "head -c 100000 /dev/zero | tr '\\0' x >&2; echo THE-END >&2; exit 9"}}).code == 0);
  const auto result = plugin.handle(task_spec{});
  REQUIRE(result.code == code_of(Status::Retry));
  const std::string prefix = "command exited with code 9: ";
  REQUIRE(result.error.rfind(prefix, 0) == 0);
  const std::string tail = result.error.substr(prefix.size());
  CHECK(tail.size() == 2047);  // 2048 bytes less the trailing newline
  CHECK(tail.ends_with("xxxTHE-END"));
}

TEST_CASE("exec survives a command that does not read its stdin", "[plugins][exec]") {
  plugin_instance plugin(shipped_plugin_path("exec"));
  REQUIRE(plugin.init({{"command", "exit 0"}}).code == 0);
  CHECK(plugin.handle(body_task(std::string(4 << 20, 'b'))).code == code_of(Status::Ok));
}

TEST_CASE("exec does not deadlock when the command floods stderr before reading stdin", "[plugins][exec]") {
  temp_dir dir;
  plugin_instance plugin(shipped_plugin_path("exec"));
  REQUIRE(plugin.init({{"command", R"(head -c 1000000 /dev/zero >&2; cat > "$SPOOLD_ARG_OUT")"}}).code == 0);
  task_spec task = body_task(std::string(1 << 20, 'z'));
  task.args = {{"out", dir / "out"}};
  CHECK(plugin.handle(task).code == code_of(Status::Ok));
  CHECK(std::filesystem::file_size(dir / "out") == task.body.size());
}

TEST_CASE("exec reports a command that cannot be started", "[plugins][exec]") {
  plugin_instance plugin(shipped_plugin_path("exec"));
  REQUIRE(plugin.init({{"command", "/nonexistent/program", 0}}).code == 0);
  const auto result = plugin.handle(task_spec{});
  CHECK(result.code == code_of(Status::Retry));
  CHECK(result.error.find("cannot run '/nonexistent/program'") != std::string::npos);
  CHECK(result.error.find("No such file or directory") != std::string::npos);
}

TEST_CASE("exec fails a task whose arg value holds a NUL byte", "[plugins][exec]") {
  temp_dir dir;
  plugin_instance plugin(shipped_plugin_path("exec"));
  REQUIRE(plugin.init({{"command", R"(touch "$SPOOLD_ARG_OUT")"}}).code == 0);
  const auto result = plugin.handle(args_task({{"out", dir / "ran"}, {"blob", std::string("a\0b", 3)}}));
  CHECK(result.code == code_of(Status::Fail));
  CHECK(result.error.find("the value of arg 'blob' holds a NUL byte") != std::string::npos);
  CHECK_FALSE(std::filesystem::exists(dir / "ran"));
}

TEST_CASE("exec reaps the command and does not wait for its background children", "[plugins][exec]") {
  temp_dir dir;
  plugin_instance plugin(shipped_plugin_path("exec"));
  // The background sleep keeps the stderr pipe open after the command exits.
  REQUIRE(plugin.init({{"command", R"(echo $$ > "$SPOOLD_ARG_OUT"; sleep 3 & exit 0)"}}).code == 0);
  const auto start = std::chrono::steady_clock::now();
  CHECK(plugin.handle(args_task({{"out", dir / "pid"}})).code == code_of(Status::Ok));
  CHECK(elapsed_since(start) < std::chrono::milliseconds(2000));

  const pid_t pid = std::stoi(read_file(dir / "pid"));
  errno = 0;
  CHECK(::kill(pid, 0) == -1);  // a zombie would still accept signal 0
  CHECK(errno == ESRCH);
}

TEST_CASE("the shipped plugins refuse an unknown option, naming it and the known ones", "[plugins]") {
  temp_dir dir;
  struct refusal {
    std::string plugin;
    std::vector<spoold::test::option> options;
    std::string error;
  };
  const std::string log = dir / "log.txt";
  const refusal r = GENERATE_COPY(values<refusal>({
      {"log_writer", {{"log_fiel", "x.log"}}, "plugin 'log_writer': unknown option 'log_fiel' (known: log_file)"},
      {"log_writer", {{"log_file", log}, {"log.level", "3"}},
       "plugin 'log_writer': unknown option 'log.level' (known: log_file)"},
      {"dispatch", {{"log_file", log}, {"type", "a", 0}},
       "plugin 'dispatch': unknown option 'type' (known: log_file, types)"},
      {"sleep", {{"default", "5"}}, "plugin 'sleep': unknown option 'default' (known: default_ms)"},
      {"exec", {{"command", "true"}, {"env", "X=1"}}, "plugin 'exec': unknown option 'env' (known: command)"},
  }));
  CAPTURE(r.plugin, r.error);
  plugin_instance plugin(shipped_plugin_path(r.plugin));
  const auto result = plugin.init(r.options);
  CHECK(result.code == -1);
  CHECK(result.error == r.error);
}

TEST_CASE("the shipped plugins take the options of a chain, which its other plugins may need", "[plugins]") {
  temp_dir dir;
  const std::string log = dir / "log.txt";
  // configs/example.toml: plugin = ["dispatch", "log_writer"] with types and log_file.
  const std::vector<spoold::test::option> shared = {{"types", "a", 0}, {"types", "b", 1}, {"log_file", log}};
  for (const std::string name : {"dispatch", "log_writer"}) {
    CAPTURE(name);
    plugin_instance plugin(shipped_plugin_path(name));
    CHECK(plugin.init(shared, "events", 2).code == 0);
    plugin_instance alone(shipped_plugin_path(name));
    const auto refused = alone.init(shared, "events", 1);
    CHECK((name == "dispatch" ? refused.code == 0 : refused.code == -1));
  }
  // A host that does not say how long the chain is gets no refusal.
  plugin_instance untold(shipped_plugin_path("sleep"));
  CHECK(untold.init({{"default_ms", "5"}, {"somebody_elses", "x"}}, "q", 0).code == 0);
}

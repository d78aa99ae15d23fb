// The TOML config (SPEC §7): every kind of mistake is reported as
// "file:line:col: message" naming the key or value, all in one pass, and a
// valid file turns into the expected struct.
#include "config.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "support/temp_dir.hpp"

using Catch::Contains;
using Catch::StartsWith;

namespace {

// A config file at <tmp>/etc/spoold.toml; its default plugin folder
// <tmp>/etc/plugins holds empty liblog_writer.so, libmail.so, libdispatch.so.
class config_files {
 public:
  config_files() : etc_(tmp_ / "etc"), path_(etc_ + "/spoold.toml") {
    REQUIRE(::mkdir(etc_.c_str(), 0700) == 0);
    REQUIRE(::mkdir((etc_ + "/plugins").c_str(), 0700) == 0);
    for (const char* p : {"log_writer", "mail", "dispatch"}) {
      spoold::unit::write_file(etc_ + "/plugins/lib" + p + ".so", "");
    }
  }

  spoold::config_load load(std::string_view text, bool check_plugins = true) {
    spoold::unit::write_file(path_, text);
    return spoold::load_config(path_, check_plugins);
  }

  const std::string& path() const { return path_; }
  const std::string& etc() const { return etc_; }
  const spoold::unit::temp_dir& tmp() const { return tmp_; }

 private:
  spoold::unit::temp_dir tmp_;
  std::string etc_;
  std::string path_;
};

std::string all_problems(const spoold::config_load& r) {
  std::string out;
  for (const auto& p : r.problems) out += "\n  " + p;
  return out.empty() ? "(no problems)" : out;
}

// The problem reported at line:col (with the "file:line:col: " prefix cut
// off), or "" when there is none.
std::string problem_at(const spoold::config_load& r, const std::string& file, int line, int col) {
  const std::string prefix = file + ":" + std::to_string(line) + ":" + std::to_string(col) + ": ";
  for (const auto& p : r.problems) {
    if (p.rfind(prefix, 0) == 0) return p.substr(prefix.size());
  }
  return "";
}

constexpr std::string_view k_one_queue = R"([[queue]]
name = "a"
dir = "spool/a"
plugin = "log_writer"
)";

}  // namespace

TEST_CASE("config: the SPEC example loads into the expected struct", "[config]") {
  config_files f;
  REQUIRE(::mkdir((f.tmp() / "plugins").c_str(), 0700) == 0);
  spoold::unit::write_file(f.tmp() / "plugins/liblog_writer.so", "");
  const auto r = f.load(R"([host]
plugin_dir = "../plugins"
log_level  = "warn"
log_format = "json"
shutdown_grace = "45s"
rescan_interval = "0"

[defaults]
processes    = 1
max_attempts = 5
backoff      = "1s"
backoff_max  = "10m"
timeout      = "0s"
max_tasks    = 0

[[queue]]
name      = "tasks_a"
dir       = "spool/tasks_a"
plugin    = "log_writer"
processes = 4
dir_mode  = "0750"
file_mode = 0o640
[queue.options]
log_file = "log.txt"
)");
  INFO(all_problems(r));
  REQUIRE(r.ok());
  const auto& c = r.value;
  CHECK(c.path == f.path());
  CHECK(c.host.plugin_dir == f.tmp() / "plugins");
  CHECK(c.host.log_level == "warn");
  CHECK(c.host.log_format == "json");
  CHECK(c.host.shutdown_grace == spoold::duration(45000));
  CHECK(c.host.rescan_interval == spoold::duration(0));
  REQUIRE(c.queues.size() == 1);
  const auto& q = c.queues[0];
  CHECK(q.name == "tasks_a");
  CHECK(q.dir == f.etc() + "/spool/tasks_a");
  CHECK(q.plugins == std::vector<std::string>{"log_writer"});
  CHECK(q.processes == 4);
  CHECK(q.max_attempts == 5);
  CHECK(q.backoff == spoold::duration(1000));
  CHECK(q.backoff_max == spoold::duration(600000));
  CHECK(q.timeout == spoold::duration(0));
  CHECK(q.max_tasks == 0);
  CHECK(q.dir_mode == 0750);
  CHECK(q.file_mode == 0640);
  REQUIRE(q.options.size() == 1);
  CHECK(q.options[0].key == "log_file");
  CHECK(q.options[0].value == "log.txt");
  CHECK(q.options[0].index == -1);
  CHECK(c.find_queue("tasks_a") == &q);
  CHECK(c.find_queue("tasks_b") == nullptr);
  CHECK(spoold::plugin_path(c.host, "log_writer") == f.tmp() / "plugins/liblog_writer.so");
}

TEST_CASE("config: defaults when only a queue is given", "[config]") {
  config_files f;
  const auto r = f.load(k_one_queue);
  INFO(all_problems(r));
  REQUIRE(r.ok());
  const auto& c = r.value;
  CHECK(c.host.plugin_dir == f.etc() + "/plugins");
  CHECK(c.host.log_level == "info");
  CHECK(c.host.log_format == "text");
  CHECK(c.host.shutdown_grace == spoold::duration(30000));
  const auto& q = c.queues.at(0);
  CHECK(q.processes == 1);
  CHECK(q.max_attempts == 5);
  CHECK(q.backoff == spoold::duration(1000));
  CHECK(q.backoff_max == spoold::duration(600000));
  CHECK(q.timeout == spoold::duration(0));
  CHECK(q.dir_mode == 0700);
  CHECK(q.file_mode == 0600);
  CHECK(q.max_rss == 0);
  CHECK_FALSE(q.nice.has_value());
  CHECK(q.options.empty());
}

TEST_CASE("config: max_rss sizes and nice", "[config]") {
  using spoold::parse_size;
  CHECK(parse_size("0") == 0u);
  CHECK(parse_size("4096") == 4096u);
  CHECK(parse_size("64k") == 64u << 10);
  CHECK(parse_size("512M") == 512u << 20);
  CHECK(parse_size("2G") == std::uint64_t{2} << 30);
  CHECK(parse_size("3T") == std::uint64_t{3} << 40);
  for (const char* bad : {"", "M", "1.5G", "12X", "-1", "1MB", " 1M", "1M ", "16777216T", "99999999999999999999"}) {
    INFO(bad);
    CHECK_FALSE(parse_size(bad).has_value());
  }
  CHECK(parse_size("16777215T") == std::uint64_t{16777215} << 40);
}

TEST_CASE("config: an unknown key is reported with its line, column and name", "[config]") {
  config_files f;
  SECTION("at the top level") {
    const auto r = f.load("bogus = 1\n\n" + std::string(k_one_queue));
    INFO(all_problems(r));
    REQUIRE(r.problems.size() == 1);
    CHECK_THAT(problem_at(r, f.path(), 1, 1), Contains("unknown key 'bogus'") && Contains("top level") &&
                                                  Contains("defaults, host, queue"));
  }
  SECTION("in [host]") {
    const auto r = f.load(std::string("[host]\nlog_level = \"info\"\n  plugin_dirr = \"x\"\n\n") + std::string(k_one_queue));
    INFO(all_problems(r));
    REQUIRE(r.problems.size() == 1);
    CHECK_THAT(problem_at(r, f.path(), 3, 3), Contains("unknown key 'plugin_dirr'") && Contains("[host]") &&
                                                  Contains("plugin_dir"));
  }
  SECTION("in [defaults]") {
    const auto r = f.load(std::string("[defaults]\nretries = 3\n\n") + std::string(k_one_queue));
    INFO(all_problems(r));
    REQUIRE(r.problems.size() == 1);
    CHECK_THAT(problem_at(r, f.path(), 2, 1), Contains("unknown key 'retries'") && Contains("[defaults]") &&
                                                  Contains("max_attempts"));
  }
  SECTION("in [[queue]]") {
    const auto r = f.load(std::string(k_one_queue) + "prcesses = 2\n");
    INFO(all_problems(r));
    REQUIRE(r.problems.size() == 1);
    CHECK_THAT(problem_at(r, f.path(), 5, 1), Contains("unknown key 'prcesses'") && Contains("[[queue]]") &&
                                                  Contains("processes"));
  }
}

TEST_CASE("config: a value of the wrong type names the key and both types", "[config]") {
  config_files f;
  SECTION("processes = \"4\"") {
    const auto r = f.load(std::string(k_one_queue) + "processes = \"4\"\n");
    INFO(all_problems(r));
    REQUIRE(r.problems.size() == 1);
    CHECK_THAT(problem_at(r, f.path(), 5, 13), Contains("processes") && Contains("must be an integer") &&
                                                   Contains("not a string"));
  }
  SECTION("a float for an integer") {
    const auto r = f.load(std::string("[defaults]\nmax_attempts = 2.5\n") + std::string(k_one_queue));
    INFO(all_problems(r));
    REQUIRE(r.problems.size() == 1);
    CHECK_THAT(problem_at(r, f.path(), 2, 16), Contains("defaults.max_attempts") && Contains("not a float"));
  }
  SECTION("a number for a string") {
    const auto r = f.load(std::string("[host]\nlog_format = 1\n") + std::string(k_one_queue));
    INFO(all_problems(r));
    REQUIRE_FALSE(r.ok());
    CHECK_THAT(problem_at(r, f.path(), 2, 14), Contains("host.log_format must be a string, not an integer"));
  }
  SECTION("a duration given as a number") {
    const auto r = f.load(std::string(k_one_queue) + "timeout = 30\n");
    INFO(all_problems(r));
    REQUIRE(r.problems.size() == 1);
    CHECK_THAT(problem_at(r, f.path(), 5, 11), Contains("timeout") && Contains("duration string") &&
                                                   Contains("not an integer"));
  }
  SECTION("[host] as a value") {
    const auto r = f.load(std::string("host = \"x\"\n") + std::string(k_one_queue));
    INFO(all_problems(r));
    REQUIRE(r.problems.size() == 1);
    CHECK_THAT(problem_at(r, f.path(), 1, 8), Contains("[host] must be a table"));
  }
  SECTION("queue as a single table") {
    const auto r = f.load("[queue]\nname = \"a\"\ndir = \"d\"\nplugin = \"log_writer\"\n");
    INFO(all_problems(r));
    REQUIRE(r.problems.size() == 1);
    CHECK_THAT(problem_at(r, f.path(), 1, 1), Contains("[[queue]]"));
  }
}

TEST_CASE("config: an integer out of range names the key, the value and the range", "[config]") {
  config_files f;
  SECTION("processes = 0") {
    const auto r = f.load(std::string(k_one_queue) + "processes = 0\n");
    INFO(all_problems(r));
    REQUIRE(r.problems.size() == 1);
    CHECK_THAT(problem_at(r, f.path(), 5, 13), Contains("processes is 0, expected 1 to 1024"));
  }
  SECTION("processes = -1 in [defaults]") {
    const auto r = f.load(std::string("[defaults]\nprocesses = -1\n") + std::string(k_one_queue));
    INFO(all_problems(r));
    REQUIRE(r.problems.size() == 1);
    CHECK_THAT(problem_at(r, f.path(), 2, 13), Contains("defaults.processes is -1, expected 1 to 1024"));
  }
  SECTION("a huge integer does not wrap around") {
    const auto r = f.load(std::string(k_one_queue) + "max_tasks = 4294967297\n");
    INFO(all_problems(r));
    REQUIRE(r.problems.size() == 1);
    CHECK_THAT(problem_at(r, f.path(), 5, 13), Contains("max_tasks is 4294967297"));
  }
  SECTION("a file mode over 0777") {
    const auto r = f.load(std::string(k_one_queue) + "dir_mode = \"1777\"\n");
    INFO(all_problems(r));
    REQUIRE(r.problems.size() == 1);
    CHECK_THAT(problem_at(r, f.path(), 5, 12), Contains("dir_mode must be a file mode"));
  }
}

TEST_CASE("config: a bad duration quotes the text and says what is expected", "[config]") {
  config_files f;
  const char* text = GENERATE("10 seconds", "-1s", "5x", "1.5s", "", "s", "10");
  INFO("backoff = \"" << text << "\"");
  const auto r = f.load(std::string(k_one_queue) + "backoff = \"" + text + "\"\n");
  INFO(all_problems(r));
  REQUIRE(r.problems.size() == 1);
  CHECK_THAT(problem_at(r, f.path(), 5, 11),
             Contains("backoff = \"" + std::string(text) + "\" is not a duration") && Contains("\"250ms\""));
}

TEST_CASE("config: the same queue name twice is refused at the second", "[config]") {
  config_files f;
  const auto r = f.load(R"([[queue]]
name = "a"
dir = "spool/a"
plugin = "log_writer"

[[queue]]
name = "a"
dir = "spool/b"
plugin = "log_writer"
)");
  INFO(all_problems(r));
  REQUIRE(r.problems.size() == 1);
  CHECK_THAT(problem_at(r, f.path(), 7, 8), Contains("queue name \"a\" is used twice"));
}

TEST_CASE("config: the same directory under two spellings is refused", "[config]") {
  config_files f;
  SECTION("lexically") {
    const auto r = f.load(R"([[queue]]
name = "a"
dir = "spool/a"
plugin = "log_writer"

[[queue]]
name = "b"
dir = "./spool/../spool/a"
plugin = "log_writer"
)");
    INFO(all_problems(r));
    REQUIRE(r.problems.size() == 1);
    CHECK_THAT(problem_at(r, f.path(), 8, 7),
               Contains("queue 'b'") && Contains("\"./spool/../spool/a\" is used by another queue"));
  }
  SECTION("with a trailing slash, before the directory exists") {
    const auto r = f.load(std::string(k_one_queue) + "\n[[queue]]\nname = \"b\"\ndir = \"spool/a/\"\nplugin = \"log_writer\"\n");
    INFO(all_problems(r));
    REQUIRE(r.problems.size() == 1);
    CHECK_THAT(problem_at(r, f.path(), 8, 7), Contains("\"spool/a/\" is used by another queue"));
    CHECK(r.value.queues.at(1).dir == f.etc() + "/spool/a");
  }
  SECTION("relative and absolute") {
    const auto r = f.load(std::string(k_one_queue) + "\n[[queue]]\nname = \"b\"\ndir = \"" + f.etc() +
                          "/spool/a\"\nplugin = \"log_writer\"\n");
    INFO(all_problems(r));
    REQUIRE(r.problems.size() == 1);
    CHECK_THAT(problem_at(r, f.path(), 8, 7), Contains("queue 'b'") && Contains("used by another queue"));
  }
  SECTION("through a symbolic link") {
    REQUIRE(::mkdir((f.etc() + "/spool").c_str(), 0700) == 0);
    REQUIRE(::mkdir((f.etc() + "/spool/a").c_str(), 0700) == 0);
    REQUIRE(::symlink("spool/a", (f.etc() + "/alias").c_str()) == 0);
    const auto r = f.load(std::string(k_one_queue) + "\n[[queue]]\nname = \"b\"\ndir = \"alias\"\nplugin = \"log_writer\"\n");
    INFO(all_problems(r));
    REQUIRE(r.problems.size() == 1);
    CHECK_THAT(problem_at(r, f.path(), 8, 7), Contains("\"alias\" is used by another queue"));
  }
}

TEST_CASE("config: a missing plugin file names the plugin and the file looked for", "[config]") {
  config_files f;
  REQUIRE(::mkdir((f.etc() + "/empty").c_str(), 0700) == 0);
  const std::string text = "[host]\nplugin_dir = \"empty\"\n\n" + std::string(k_one_queue);
  SECTION("checked") {
    const auto r = f.load(text, true);
    INFO(all_problems(r));
    REQUIRE(r.problems.size() == 1);
    CHECK_THAT(problem_at(r, f.path(), 7, 10),
               Contains("plugin \"log_writer\" not found") && Contains(f.etc() + "/empty/liblog_writer.so"));
  }
  SECTION("not checked") {
    const auto r = f.load(text, false);
    INFO(all_problems(r));
    CHECK(r.ok());
  }
  SECTION("one missing link of a chain") {
    const auto r = f.load("[[queue]]\nname = \"a\"\ndir = \"d\"\nplugin = [\"log_writer\", \"nope\"]\n", true);
    INFO(all_problems(r));
    REQUIRE(r.problems.size() == 1);
    CHECK_THAT(problem_at(r, f.path(), 4, 10), Contains("plugin \"nope\" not found") && Contains("libnope.so"));
  }
}

TEST_CASE("config: a queue without name, dir or plugin says which key to add", "[config]") {
  config_files f;
  SECTION("name") {
    const auto r = f.load("[[queue]]\ndir = \"d\"\nplugin = \"log_writer\"\n");
    INFO(all_problems(r));
    REQUIRE(r.problems.size() == 1);
    CHECK_THAT(problem_at(r, f.path(), 1, 1), Contains("has no name") && Contains("name = "));
  }
  SECTION("dir") {
    const auto r = f.load("[[queue]]\nname = \"a\"\nplugin = \"log_writer\"\n");
    INFO(all_problems(r));
    REQUIRE(r.problems.size() == 1);
    CHECK_THAT(problem_at(r, f.path(), 1, 1), Contains("queue 'a' has no dir") && Contains("dir = "));
  }
  SECTION("plugin") {
    const auto r = f.load("[[queue]]\nname = \"a\"\ndir = \"d\"\n");
    INFO(all_problems(r));
    REQUIRE(r.problems.size() == 1);
    CHECK_THAT(problem_at(r, f.path(), 1, 1),
               Contains("queue 'a' has no plugin") && Contains("lib<name>.so in " + f.etc() + "/plugins"));
  }
  SECTION("no queue at all") {
    const auto r = f.load("[host]\nlog_level = \"info\"\n");
    INFO(all_problems(r));
    REQUIRE(r.problems.size() == 1);
    CHECK_THAT(r.problems[0], StartsWith(f.path() + ": ") && Contains("no [[queue]]"));
  }
  SECTION("a bad queue name") {
    const auto r = f.load("[[queue]]\nname = \"a/b\"\ndir = \"d\"\nplugin = \"log_writer\"\n");
    INFO(all_problems(r));
    REQUIRE(r.problems.size() == 1);
    CHECK_THAT(problem_at(r, f.path(), 2, 8), Contains("queue name \"a/b\""));
  }
  SECTION("a plugin name with a slash") {
    const auto r = f.load("[[queue]]\nname = \"a\"\ndir = \"d\"\nplugin = \"../log_writer\"\n");
    INFO(all_problems(r));
    REQUIRE(r.problems.size() == 1);
    CHECK_THAT(problem_at(r, f.path(), 4, 10), Contains("plugin \"../log_writer\" must be a plain name"));
  }
}

TEST_CASE("config: a bad log_level quotes it and lists the levels", "[config]") {
  config_files f;
  const auto r = f.load("[host]\nlog_level = \"verbose\"\n\n" + std::string(k_one_queue));
  INFO(all_problems(r));
  REQUIRE(r.problems.size() == 1);
  CHECK_THAT(problem_at(r, f.path(), 2, 13),
             Contains("host.log_level = \"verbose\"") && Contains("trace, debug, info, warn or error"));
}

TEST_CASE("config: plugin may be a list, a chain in order", "[config]") {
  config_files f;
  const auto r = f.load("[[queue]]\nname = \"a\"\ndir = \"d\"\nplugin = [\"dispatch\", \"mail\", \"log_writer\"]\n");
  INFO(all_problems(r));
  REQUIRE(r.ok());
  CHECK(r.value.queues.at(0).plugins == std::vector<std::string>{"dispatch", "mail", "log_writer"});

  SECTION("an empty list is refused") {
    const auto e = f.load("[[queue]]\nname = \"a\"\ndir = \"d\"\nplugin = []\n");
    INFO(all_problems(e));
    REQUIRE(e.problems.size() == 1);
    CHECK_THAT(problem_at(e, f.path(), 4, 10), Contains("plugin list is empty"));
  }
  SECTION("a list entry that is not a string is refused") {
    const auto e = f.load("[[queue]]\nname = \"a\"\ndir = \"d\"\nplugin = [\"mail\", 3]\n");
    INFO(all_problems(e));
    REQUIRE(e.problems.size() == 1);
    CHECK_THAT(problem_at(e, f.path(), 4, 19), Contains("plugin list entries must be strings"));
  }
}

TEST_CASE("config: relative paths resolve against the config file's folder", "[config]") {
  config_files f;
  REQUIRE(::mkdir((f.tmp() / "lib").c_str(), 0700) == 0);
  spoold::unit::write_file(f.tmp() / "lib/liblog_writer.so", "");
  const auto r = f.load(R"([host]
plugin_dir = "../lib/./"

[[queue]]
name = "rel"
dir = "spool//x/../rel"
plugin = "log_writer"

[[queue]]
name = "abs"
dir = "/var/spool/spoold/abs"
plugin = "log_writer"

[[queue]]
name = "up"
dir = "../data/up"
plugin = "log_writer"
)");
  INFO(all_problems(r));
  REQUIRE(r.ok());
  const std::string lib = f.tmp() / "lib";
  CHECK((r.value.host.plugin_dir == lib || r.value.host.plugin_dir == lib + "/"));
  CHECK(spoold::plugin_path(r.value.host, "log_writer") == lib + "/liblog_writer.so");
  REQUIRE(r.value.queues.size() == 3);
  CHECK(r.value.queues[0].dir == f.etc() + "/spool/rel");
  CHECK(r.value.queues[1].dir == "/var/spool/spoold/abs");
  CHECK(r.value.queues[2].dir == f.tmp() / "data/up");
}

TEST_CASE("config: [defaults] apply to every queue and a queue's own value wins", "[config]") {
  config_files f;
  const auto r = f.load(R"([defaults]
processes = 3
max_attempts = 7
backoff = "2s"
backoff_max = "1h"
timeout = "90s"
max_tasks = 100
file_mode = "0640"

[[queue]]
name = "inherits"
dir = "a"
plugin = "log_writer"

[[queue]]
name = "overrides"
dir = "b"
plugin = "log_writer"
processes = 5
backoff = "250ms"
timeout = "0"
)");
  INFO(all_problems(r));
  REQUIRE(r.ok());
  REQUIRE(r.value.queues.size() == 2);
  const auto& a = r.value.queues[0];
  CHECK(a.processes == 3);
  CHECK(a.max_attempts == 7);
  CHECK(a.backoff == spoold::duration(2000));
  CHECK(a.backoff_max == spoold::duration(3600000));
  CHECK(a.timeout == spoold::duration(90000));
  CHECK(a.max_tasks == 100);
  CHECK(a.file_mode == 0640);
  const auto& b = r.value.queues[1];
  CHECK(b.processes == 5);
  CHECK(b.max_attempts == 7);
  CHECK(b.backoff == spoold::duration(250));
  CHECK(b.backoff_max == spoold::duration(3600000));
  CHECK(b.timeout == spoold::duration(0));
  CHECK(b.file_mode == 0640);
}

TEST_CASE("config: backoff_max below backoff is refused with both values", "[config]") {
  config_files f;
  SECTION("in the queue") {
    const auto r = f.load(std::string(k_one_queue) + "backoff = \"10s\"\nbackoff_max = \"5s\"\n");
    INFO(all_problems(r));
    REQUIRE(r.problems.size() == 1);
    CHECK_THAT(problem_at(r, f.path(), 1, 1),
               Contains("queue 'a'") && Contains("backoff_max (5s) is less than backoff (10s)"));
  }
  SECTION("a default backoff over the default backoff_max") {
    const auto r = f.load(std::string("[defaults]\nbackoff = \"20m\"\n\n") + std::string(k_one_queue));
    INFO(all_problems(r));
    REQUIRE(r.problems.size() == 1);
    CHECK_THAT(problem_at(r, f.path(), 4, 1), Contains("backoff_max (10m) is less than backoff (20m)"));
  }
  SECTION("equal is fine") {
    const auto r = f.load(std::string(k_one_queue) + "backoff = \"1m\"\nbackoff_max = \"60s\"\n");
    INFO(all_problems(r));
    CHECK(r.ok());
  }
}

TEST_CASE("config: a TOML syntax error is reported with its line and column", "[config]") {
  config_files f;
  SECTION("an unterminated string") {
    const auto r = f.load("[[queue]]\nname = \"a\"\ndir = \"spool/a\nplugin = \"log_writer\"\n");
    INFO(all_problems(r));
    REQUIRE(r.problems.size() == 1);
    CHECK_THAT(r.problems[0], StartsWith(f.path() + ":3:"));
  }
  SECTION("a key without a value") {
    const auto r = f.load("[[queue]]\nname = \"a\"\n\nprocesses =\n");
    INFO(all_problems(r));
    REQUIRE(r.problems.size() == 1);
    CHECK_THAT(r.problems[0], StartsWith(f.path() + ":4:"));
  }
  SECTION("a key defined twice") {
    const auto r = f.load(std::string(k_one_queue) + "name = \"b\"\n");
    INFO(all_problems(r));
    REQUIRE(r.problems.size() == 1);
    CHECK_THAT(r.problems[0], StartsWith(f.path() + ":5:") && Contains("'name'"));
  }
}

TEST_CASE("config: a file that cannot be read is one problem naming it", "[config]") {
  config_files f;
  SECTION("missing") {
    const std::string missing = f.etc() + "/missing.toml";
    const auto r = spoold::load_config(missing, true);
    INFO(all_problems(r));
    REQUIRE(r.problems.size() == 1);
    CHECK_THAT(r.problems[0], StartsWith(missing + ": ") && Contains("cannot read"));
  }
  SECTION("a directory") {
    const auto r = spoold::load_config(f.etc(), true);
    INFO(all_problems(r));
    REQUIRE(r.problems.size() == 1);
    CHECK_THAT(r.problems[0], StartsWith(f.etc() + ": "));
  }
  SECTION("without read permission") {
    spoold::unit::write_file(f.path(), k_one_queue);
    REQUIRE(::chmod(f.path().c_str(), 0) == 0);
    if (::access(f.path().c_str(), R_OK) == 0) {
      WARN("running with CAP_DAC_OVERRIDE (root?): cannot make an unreadable file");
    } else {
      const auto r = spoold::load_config(f.path(), true);
      INFO(all_problems(r));
      REQUIRE(r.problems.size() == 1);
      CHECK_THAT(r.problems[0], StartsWith(f.path() + ": ") && Contains("cannot read"));
    }
  }
}

TEST_CASE("config: [queue.options] is flattened to dotted keys and text values", "[config]") {
  config_files f;
  const auto r = f.load(std::string(k_one_queue) + R"([queue.options]
log_file = "log.txt"
retries = 3
verbose = true
ratio = 0.5
list = ["a", 2, false]
[queue.options.smtp]
host = "mail.example"
port = 25
[queue.options.smtp.tls]
on = false
)");
  INFO(all_problems(r));
  REQUIRE(r.ok());
  std::vector<std::string> got;
  for (const auto& o : r.value.queues.at(0).options) got.push_back(o.key + "[" + std::to_string(o.index) + "]=" + o.value);
  std::sort(got.begin(), got.end());
  CHECK(got == std::vector<std::string>{
                   "list[0]=a",
                   "list[1]=2",
                   "list[2]=false",
                   "log_file[-1]=log.txt",
                   "ratio[-1]=0.5",
                   "retries[-1]=3",
                   "smtp.host[-1]=mail.example",
                   "smtp.port[-1]=25",
                   "smtp.tls.on[-1]=false",
                   "verbose[-1]=true",
               });

  SECTION("a table inside an array is refused") {
    const auto e = f.load(std::string(k_one_queue) + "[queue.options]\nlist = [{ a = 1 }]\n");
    INFO(all_problems(e));
    REQUIRE(e.problems.size() == 1);
    CHECK_THAT(problem_at(e, f.path(), 6, 9), Contains("queue.options.list may hold only strings"));
  }
  SECTION("options that are not a table are refused") {
    const auto e = f.load(std::string(k_one_queue) + "options = \"x\"\n");
    INFO(all_problems(e));
    REQUIRE(e.problems.size() == 1);
    CHECK_THAT(problem_at(e, f.path(), 5, 11), Contains("options must be a table"));
  }
  SECTION("options belong to their own queue") {
    const auto two = f.load(std::string(k_one_queue) +
                            "[queue.options]\nx = 1\n[[queue]]\nname = \"b\"\ndir = \"b\"\nplugin = \"mail\"\n");
    INFO(all_problems(two));
    REQUIRE(two.ok());
    CHECK(two.value.queues.at(0).options.size() == 1);
    CHECK(two.value.queues.at(1).options.empty());
  }
}

TEST_CASE("config: every problem in a file is reported in one pass", "[config]") {
  config_files f;
  const auto r = f.load(R"(colour = "blue"

[host]
log_level = "loud"

[defaults]
processes = 0

[[queue]]
name = "a"
dir = "spool/a"
plugin = "missing_plugin"
backoff = "soon"

[[queue]]
name = "a"
plugin = "log_writer"
)");
  INFO(all_problems(r));
  CHECK(r.problems.size() == 7);
  CHECK_THAT(problem_at(r, f.path(), 1, 1), Contains("unknown key 'colour'"));
  CHECK_THAT(problem_at(r, f.path(), 4, 13), Contains("\"loud\""));
  CHECK_THAT(problem_at(r, f.path(), 7, 13), Contains("defaults.processes is 0"));
  CHECK_THAT(problem_at(r, f.path(), 12, 10), Contains("\"missing_plugin\" not found"));
  CHECK_THAT(problem_at(r, f.path(), 13, 11), Contains("\"soon\" is not a duration"));
  CHECK_THAT(problem_at(r, f.path(), 16, 8), Contains("queue name \"a\" is used twice"));
  CHECK_THAT(problem_at(r, f.path(), 15, 1), Contains("has no dir"));
  for (const auto& p : r.problems) CHECK_THAT(p, StartsWith(f.path() + ":"));
}

TEST_CASE("config: dir_group names the group that may write a queue, resolved at load", "[config]") {
  config_files f;
  SECTION("a group by name") {
    const auto r = f.load(R"([[queue]]
name = "a"
dir = "spool/a"
plugin = "log_writer"
dir_group = "root"
)");
    INFO(all_problems(r));
    REQUIRE(r.ok());
    const auto& q = r.value.queues.at(0);
    CHECK(q.dir_group == "root");
    REQUIRE(q.dir_gid.has_value());
    CHECK(*q.dir_gid == 0);
    CHECK(q.host_uid == std::optional<uid_t>(::geteuid()));
  }
  SECTION("none by default") {
    const auto r = f.load(k_one_queue);
    REQUIRE(r.ok());
    CHECK(r.value.queues.at(0).dir_group.empty());
    CHECK_FALSE(r.value.queues.at(0).dir_gid.has_value());
  }
  SECTION("a number that no group is named") {
    const auto r = f.load(R"([[queue]]
name = "a"
dir = "spool/a"
plugin = "log_writer"
dir_group = "424242"
)");
    INFO(all_problems(r));
    REQUIRE(r.ok());
    CHECK(r.value.queues.at(0).dir_gid == std::optional<gid_t>(424242));
  }
  SECTION("from [defaults], and a queue's empty dir_group turns it off") {
    const auto r = f.load(R"([defaults]
dir_group = "root"

[[queue]]
name = "inherits"
dir = "a"
plugin = "log_writer"

[[queue]]
name = "own"
dir = "b"
plugin = "log_writer"
dir_group = ""
)");
    INFO(all_problems(r));
    REQUIRE(r.ok());
    CHECK(r.value.queues.at(0).dir_gid == std::optional<gid_t>(0));
    CHECK(r.value.queues.at(1).dir_group.empty());
    CHECK_FALSE(r.value.queues.at(1).dir_gid.has_value());
  }
}

TEST_CASE("config: a dir_group that is not a group names the queue, the key and the value", "[config]") {
  config_files f;
  SECTION("in the queue") {
    const auto r = f.load(R"([[queue]]
name = "mail"
dir = "spool/mail"
plugin = "log_writer"
dir_group = "no-such-group-spoold"
)");
    REQUIRE(r.problems.size() == 1);
    CHECK_THAT(problem_at(r, f.path(), 5, 13),
               StartsWith("queue 'mail': dir_group = \"no-such-group-spoold\" is not a group on this host") &&
                   Contains("groupadd no-such-group-spoold"));
  }
  SECTION("in [defaults]: once per queue, each named, at the default's line") {
    const auto r = f.load(R"([defaults]
dir_group = "no-such-group-spoold"

[[queue]]
name = "a"
dir = "a"
plugin = "log_writer"

[[queue]]
name = "b"
dir = "b"
plugin = "log_writer"
)");
    REQUIRE(r.problems.size() == 2);
    CHECK_THAT(r.problems[0], StartsWith(f.path() + ":2:13: queue 'a': dir_group = \"no-such-group-spoold\""));
    CHECK_THAT(r.problems[1], StartsWith(f.path() + ":2:13: queue 'b': dir_group = \"no-such-group-spoold\""));
  }
  SECTION("not a string") {
    const auto r = f.load(R"([[queue]]
name = "a"
dir = "a"
plugin = "log_writer"
dir_group = 33
)");
    CHECK(problem_at(r, f.path(), 5, 13) == "queue 'a'.dir_group must be a string, not an integer");
  }
}

TEST_CASE("config: [queue.sandbox] merges over [defaults.sandbox] key by key", "[config][sandbox]") {
  config_files f;
  const auto r = f.load(R"([defaults.sandbox]
memory = "512M"
core = false
read = ["/usr/share/zoneinfo"]

[[queue]]
name = "a"
dir = "spool/a"
plugin = "log_writer"
[queue.sandbox]
read = ["app", "/srv/data"]
write = ["out"]
open_files = 256
cpu = "30s"
require = true
group = "root"

[[queue]]
name = "b"
dir = "spool/b"
plugin = "log_writer"

[[queue]]
name = "c"
dir = "spool/c"
plugin = "log_writer"
[queue.sandbox]
user = "root"
)");
  REQUIRE(r.ok());
  const auto& a = r.value.queues[0].sandbox;
  CHECK(a.enabled);
  CHECK(a.path_rules);
  CHECK(a.memory == 512u << 20);  // from the defaults
  CHECK_FALSE(a.core);
  CHECK(a.read == std::vector<std::string>{f.etc() + "/app", "/srv/data"});  // the queue's list replaces the default
  CHECK(a.write == std::vector<std::string>{f.etc() + "/out"});
  CHECK(a.open_files == 256u);
  CHECK(a.cpu == spoold::duration{30000});
  CHECK(a.require);
  CHECK_FALSE(a.uid.has_value());
  CHECK(a.gid == 0u);
  const auto& b = r.value.queues[1].sandbox;
  CHECK(b.enabled);  // [defaults.sandbox] alone applies
  CHECK(b.path_rules);
  CHECK(b.read == std::vector<std::string>{"/usr/share/zoneinfo"});
  const auto& c = r.value.queues[2].sandbox;
  CHECK(c.uid == 0u);
  CHECK(c.gid == 0u);  // the user's own group when none is named
}

TEST_CASE("config: no sandbox table, no sandbox; memory alone sets no path rules", "[config][sandbox]") {
  config_files f;
  auto r = f.load(k_one_queue);
  REQUIRE(r.ok());
  CHECK_FALSE(r.value.queues[0].sandbox.enabled);
  r = f.load(std::string(k_one_queue) + "[queue.sandbox]\nmemory = \"1G\"\n");
  REQUIRE(r.ok());
  CHECK(r.value.queues[0].sandbox.enabled);
  CHECK_FALSE(r.value.queues[0].sandbox.path_rules);
}

TEST_CASE("config: bad sandbox values name the queue, the key and the value", "[config][sandbox]") {
  config_files f;
  const auto r = f.load(std::string(k_one_queue) + R"([queue.sandbox]
user = "no-such-user-spoold"
group = "no-such-group-spoold"
read = "/srv"
write = [1]
memory = "lots"
open_files = 3
cpu = "1500ms"
core = "no"
colour = "blue"
)");
  CHECK_THAT(problem_at(r, f.path(), 6, 8),
             StartsWith("queue 'a': sandbox.user = \"no-such-user-spoold\": no such user"));
  CHECK_THAT(problem_at(r, f.path(), 7, 9),
             StartsWith("queue 'a': sandbox.group = \"no-such-group-spoold\": no such group"));
  CHECK_THAT(problem_at(r, f.path(), 8, 8), StartsWith("queue 'a': sandbox.read must be a list of paths"));
  CHECK_THAT(problem_at(r, f.path(), 9, 10), StartsWith("queue 'a': sandbox.write entries must be non-empty path strings"));
  CHECK_THAT(problem_at(r, f.path(), 10, 10), StartsWith("queue 'a': sandbox.memory = \"lots\" is not a size"));
  CHECK_THAT(problem_at(r, f.path(), 11, 14), StartsWith("queue 'a': sandbox.open_files is 3, expected 16 to"));
  CHECK_THAT(problem_at(r, f.path(), 12, 7), Contains("sandbox.cpu = \"1500ms\": the kernel counts CPU time limits in whole seconds"));
  CHECK_THAT(problem_at(r, f.path(), 13, 8), StartsWith("queue 'a': sandbox.core must be true or false, not a string"));
  CHECK_THAT(problem_at(r, f.path(), 14, 1), StartsWith("unknown key 'colour' in the sandbox table of queue 'a'"));
  CHECK(r.problems.size() == 9);
  INFO(all_problems(r));
  const auto t = f.load(std::string(k_one_queue) + "sandbox = 3\n");
  CHECK_THAT(all_problems(t), Contains("queue 'a': sandbox must be a table"));
}

// Issue 9: a Fail or Retry returned by a shipped plugin kept no reason; spoold.error said only "returned Fail".
#include <catch2/catch.hpp>
#include <filesystem>
#include <string>

#include "../unit/support/spool_bytes.hpp"
#include "../unit/support/temp_dir.hpp"
#include "spoold_process.hpp"
#include "spool_file.hpp"

namespace {

using spoold::regression::spoold_process;
using spoold::regression::wait_until;
using spoold::unit::raw_arg;
using spoold::unit::raw_spool;
using spoold::unit::temp_dir;

// Places a task in dir by rename, as producers do.
void put_task(const std::string& dir, const std::string& id, const std::string& bytes) {
  std::filesystem::create_directories(dir);
  spoold::unit::write_file(dir + "/.tmp-" + id, bytes);
  std::filesystem::rename(dir + "/.tmp-" + id, dir + "/" + id);
}

std::string error_of_failed(const std::string& path) {
  const std::string bytes = spoold::unit::read_file(path);
  const auto parsed = spoold::parse_spool_file(bytes);
  REQUIRE(parsed.ok());
  return std::string(parsed.task->arg("spoold.error").value_or("<no spoold.error>"));
}

}  // namespace

TEST_CASE("regression: the reason of a plugin's Fail or Retry is recorded as spoold.error", "[regression][daemon]") {
  temp_dir tmp;
  const std::string config = tmp / "spoold.toml";
  spoold::unit::write_file(config, "[host]\nplugin_dir = \"" + spoold::regression::shipped_plugin_dir() +
                                       "\"\nrescan_interval = \"1s\"\n\n"
                                       "[[queue]]\nname = \"routes\"\ndir = \"spool/routes\"\nplugin = \"dispatch\"\n"
                                       "[queue.options]\nlog_file = \"dispatch.log\"\n\n"
                                       "[[queue]]\nname = \"jobs\"\ndir = \"spool/jobs\"\nplugin = \"exec\"\n"
                                       "max_attempts = 1\n"
                                       "[queue.options]\ncommand = \"echo mailbox busy >&2; exit 75\"\n");
  const std::string not_json = "uwsgi_spoolfile_on_test_1_1_1_1_1";
  const std::string tempfail = "uwsgi_spoolfile_on_test_1_2_1_1_1";
  spoold_process d(config, tmp / "spoold.log");
  REQUIRE(wait_until([&] { return d.logged("spoold ready"); }, std::chrono::seconds(20)));
  put_task(tmp / "spool/routes", not_json, raw_spool(raw_arg("k", "v"), "hello"));
  put_task(tmp / "spool/jobs", tempfail, raw_spool(raw_arg("k", "v")));

  const std::string failed_dispatch = tmp / ("spool/routes/failed/" + not_json);
  const std::string failed_exec = tmp / ("spool/jobs/failed/" + tempfail);
  REQUIRE(wait_until([&] { return spoold::unit::exists(failed_dispatch) && spoold::unit::exists(failed_exec); },
                     std::chrono::seconds(20)));
  const std::string dispatch_error = error_of_failed(failed_dispatch);
  CHECK(dispatch_error.rfind("plugin 'dispatch' returned Fail: the body is not a JSON object", 0) == 0);
  CHECK(dispatch_error.find("invalid JSON at byte") != std::string::npos);
  CHECK(error_of_failed(failed_exec) ==
        "plugin 'exec' returned Retry: command exited with 75 (EX_TEMPFAIL): mailbox busy"
        " (gave up after 1 of max_attempts 1)");
  CHECK(d.stop() == 0);
  CHECK(d.log().find("returned Fail: the body is not a JSON object") != std::string::npos);
}

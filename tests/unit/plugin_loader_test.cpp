// The host's side of the plugin boundary (host/plugin_loader): what a
// handle() call comes back with, loaded as a spooler loads it.
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "../plugins/plugin_harness.hpp"
#include "../unit/support/temp_dir.hpp"
#include "plugin_loader.hpp"

namespace {

spoold::host_config host_for(const std::filesystem::path& plugin_file) {
  spoold::host_config host;
  host.plugin_dir = plugin_file.parent_path().string();
  return host;
}

void no_log(void*, std::int32_t, const char*, std::size_t) {}

struct task_fields {
  std::string id = "uwsgi_spoolfile_on_test_1_1_1_1_1";
  std::string queue = "q";
  std::vector<spoold_arg> args;
  std::string body;
  spoold_task_view view() const {
    return {sizeof(spoold_task_view), 0, {id.data(), id.size()}, {queue.data(), queue.size()}, args.data(),
            args.size(), {body.data(), body.size()}};
  }
};

}  // namespace

TEST_CASE("loader: the reason of task.fail() comes back with the Fail", "[plugin_loader]") {
  spoold::unit::temp_dir dir;
  auto loaded = spoold::load_plugin(host_for(spoold::test::shipped_plugin_path("dispatch")), "dispatch");
  REQUIRE(loaded.ok());
  const std::vector<spoold::option_entry> options = {{"log_file", dir / "log.txt", -1}};
  REQUIRE((*loaded)->init("q", options, nullptr, &no_log, 1).ok());
  task_fields task;
  task.body = "not json";
  const spoold::handle_outcome out = (*loaded)->handle(task.view());
  CHECK(out.status == static_cast<std::int32_t>(spoold::Status::Fail));
  CHECK_FALSE(out.threw);
  CHECK_FALSE(out.failed);
  CHECK(out.error.rfind("the body is not a JSON object", 0) == 0);
}

TEST_CASE("loader: a bare Status::Fail or Retry comes back with no reason", "[plugin_loader]") {
  spoold::unit::temp_dir dir;
  const auto path = spoold::test::fixture_plugin_path("fx_record");
  auto loaded = spoold::load_plugin(host_for(path), "fx_record");
  REQUIRE(loaded.ok());
  const std::vector<spoold::option_entry> options = {{"record_file", dir / "record.txt", -1}};
  REQUIRE((*loaded)->init("q", options, nullptr, &no_log, 1).ok());
  for (const std::string status : {"fail", "retry"}) {
    CAPTURE(status);
    task_fields task;
    const std::string key = "status";
    task.args = {spoold_arg{{key.data(), key.size()}, {status.data(), status.size()}}};
    const spoold::handle_outcome out = (*loaded)->handle(task.view());
    CHECK(out.status == static_cast<std::int32_t>(status == "fail" ? spoold::Status::Fail : spoold::Status::Retry));
    CHECK(out.error.empty());
  }
}

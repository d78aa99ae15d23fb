// Issue 9: plugin.hpp promises the init view lives as long as the instance, but the host freed the options after init().
#include <catch2/catch.hpp>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "../plugins/plugin_harness.hpp"
#include "../unit/support/temp_dir.hpp"
#include "plugin_loader.hpp"

namespace {
void no_log(void*, std::int32_t, const char*, std::size_t) {}
}  // namespace

TEST_CASE("regression: Options kept from init() still read the same in handle()", "[regression][plugin_loader]") {
  const auto path = spoold::test::fixture_plugin_path("fx_keep_options");
  spoold::host_config host;
  host.plugin_dir = path.parent_path().string();
  auto loaded = spoold::load_plugin(host, "fx_keep_options");
  REQUIRE(loaded.ok());
  {
    // The entries live in the queue's config for the whole process; the
    // array of views the host builds from them is what must stay.
    const std::vector<spoold::option_entry> options = {{"answer", "42", -1}, {"other", "x", -1}};
    REQUIRE((*loaded)->init("q", options, nullptr, &no_log, 1).ok());
  }
  // Reuse whatever init() freed: blocks of the size of the views array
  // (two spoold_option), filled with zeros, as the next allocations of a
  // spooler would. (Under AddressSanitizer the read itself is reported.)
  std::vector<std::unique_ptr<char[]>> scribble;
  for (int i = 0; i < 64; ++i) {
    scribble.emplace_back(new char[2 * sizeof(spoold_option)]);
    std::memset(scribble.back().get(), 0, 2 * sizeof(spoold_option));
  }
  const std::string id = "uwsgi_spoolfile_on_test_1_1_1_1_1";
  const std::string queue = "q";
  const spoold_task_view view{sizeof(spoold_task_view), 0, {id.data(), id.size()}, {queue.data(), queue.size()},
                              nullptr, 0, {nullptr, 0}};
  const spoold::handle_outcome out = (*loaded)->handle(view);
  CHECK(out.error.empty());
  CHECK(out.status == static_cast<std::int32_t>(spoold::Status::Ok));
}

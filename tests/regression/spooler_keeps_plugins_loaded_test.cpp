// Issue 9: a spooler dlclose()d its plugins before _exit, so a plugin thread still running then faulted.
#include <catch2/catch.hpp>
#include <string>

#include "../unit/support/spool_bytes.hpp"
#include "../unit/support/temp_dir.hpp"
#include "spoold_process.hpp"

namespace {

std::size_t count_of(const std::string& text, const std::string& needle) {
  std::size_t n = 0;
  for (auto pos = text.find(needle); pos != std::string::npos; pos = text.find(needle, pos + 1)) ++n;
  return n;
}

}  // namespace

TEST_CASE("regression: a recycled spooler exits 0 with its plugin's thread running, without unloading it",
          "[regression][daemon]") {
  spoold::unit::temp_dir tmp;
  const std::string config = tmp / "spoold.toml";
  const std::string record = tmp / "record.txt";
  spoold::unit::write_file(config, "[host]\nplugin_dir = \"" + spoold::regression::fixture_plugin_dir() +
                                       "\"\n\n[[queue]]\nname = \"q\"\ndir = \"spool/q\"\nplugin = \"fx_thread\"\n"
                                       "max_tasks = 1\n[queue.options]\nrecord_file = \"record.txt\"\n");
  spoold::regression::spoold_process d(config, tmp / "spoold.log");
  REQUIRE(spoold::regression::wait_until([&] { return d.logged("spoold ready"); }, std::chrono::seconds(20)));
  for (const std::string id : {"uwsgi_spoolfile_on_test_1_1_1_1_1", "uwsgi_spoolfile_on_test_1_2_1_1_1"}) {
    spoold::unit::write_file(tmp / ("spool/q/.tmp-" + id), spoold::unit::raw_spool(spoold::unit::raw_arg("k", "v")));
    std::filesystem::rename(tmp / ("spool/q/.tmp-" + id), tmp / ("spool/q/" + id));
  }
  // Each task is handled by its own spooler (max_tasks = 1), and the first
  // one has ended by the time the master reports how.
  REQUIRE(spoold::regression::wait_until(
      [&] {
        return spoold::unit::exists(record) && count_of(spoold::unit::read_file(record), "handled") == 2 &&
               d.logged("(queue q) exited with code 0");
      },
      std::chrono::seconds(30)));
  const std::string log = d.log();
  CAPTURE(log);
  CHECK(log.find("killed by signal") == std::string::npos);
  CHECK(spoold::unit::read_file(record).find("unloaded") == std::string::npos);
  CHECK(d.stop() == 0);
  CHECK(spoold::unit::read_file(record).find("unloaded") == std::string::npos);
  CHECK(d.log().find("killed by signal") == std::string::npos);
}

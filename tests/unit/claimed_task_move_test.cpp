// Regression: a claimed task's args were views into a std::string, and a
// task file of 15 bytes or less fits the string's inline buffer, so moving
// the claimed_task left the views pointing at the moved-from buffer and a
// rescheduled task was rewritten with garbage args (seen as a "how=code"
// task coming back as "how=ok").
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>

#include "queue_dir.hpp"
#include "spool_file.hpp"

TEST_CASE("a claimed short task keeps its args when moved", "[regression][queue_dir]") {
  char tmpl[] = "/tmp/spoold-move-XXXXXX";
  REQUIRE(::mkdtemp(tmpl) != nullptr);
  const std::string root = tmpl;
  spoold::queue_config q;
  q.name = "q";
  q.dir = root + "/q";
  auto dir = spoold::queue_dir::open(q);
  REQUIRE(dir.ok());
  auto bytes = spoold::encode_spool_file({{"how", "code"}}, "");
  REQUIRE(bytes.ok());
  REQUIRE(bytes->size() <= 15);
  const std::string name = "uwsgi_spoolfile_on_test_1_1_1_1_1";
  REQUIRE(spoold::write_file_atomically(dir->fd(), q.dir, name, *bytes, {}).ok());

  auto claimed = dir->claim({"", name}, spoold::now_ns());
  REQUIRE(claimed.status == spoold::claim_status::claimed);
  std::optional<spoold::claimed_task> moved = std::move(claimed.task);
  claimed.task.reset();
  REQUIRE(moved->view.arg("how") == std::optional<std::string_view>("code"));
  std::filesystem::remove_all(root);
}

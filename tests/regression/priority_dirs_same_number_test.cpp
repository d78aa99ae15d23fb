// Issue 9: priority directories 7 and 007 mapped to one index key, so one of them was never scanned.
#include <sys/inotify.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "../unit/support/spool_bytes.hpp"
#include "../unit/support/temp_dir.hpp"
#include "posix.hpp"
#include "queue_dir.hpp"
#include "queue_index.hpp"

TEST_CASE("regression: priority directories that name one number are all scanned, in a stable order",
          "[regression][queue_index]") {
  spoold::unit::temp_dir tmp;
  spoold::queue_config q;
  q.name = "q";
  q.dir = tmp / "q";
  for (const std::string sub : {"", "/7", "/007", "/07", "/3", "/failed"}) {
    REQUIRE(::mkdir((q.dir + sub).c_str(), 0700) == 0);
  }
  const std::string task = spoold::unit::raw_spool(spoold::unit::raw_arg("k", "v"));
  const std::vector<std::string> placed = {"7/uwsgi_spoolfile_on_t_1_1_1_1_1", "007/uwsgi_spoolfile_on_t_1_2_1_1_1",
                                           "07/uwsgi_spoolfile_on_t_1_3_1_1_1", "3/uwsgi_spoolfile_on_t_1_4_1_1_1",
                                           "uwsgi_spoolfile_on_t_1_5_1_1_1"};
  for (const auto& rel : placed) spoold::unit::write_file(q.dir + "/" + rel, task);

  auto dir = spoold::queue_dir::open(q);
  REQUIRE(dir.ok());
  const int inotify_fd = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  REQUIRE(inotify_fd >= 0);
  {
    spoold::queue_index index(*dir, inotify_fd);
    REQUIRE(index.start().ok());
    std::vector<std::string> handed;
    while (auto next = index.next_due(spoold::now_ns())) {
      handed.push_back(next->task);
      REQUIRE(handed.size() <= placed.size());
    }
    // Lower numbers first; one number's directories by name; the top last.
    CHECK(handed == std::vector<std::string>{placed[3], placed[1], placed[2], placed[0], placed[4]});
  }
  ::close(inotify_fd);
}

// Issue 9: dir_mode and file_mode were masked by the umask instead of being set exactly.
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <string>

#include "../unit/support/spool_bytes.hpp"
#include "../unit/support/temp_dir.hpp"
#include <spoold/client.h>

#include "posix.hpp"
#include "queue_dir.hpp"

namespace {

class umask_guard {
 public:
  explicit umask_guard(mode_t m) : saved_(::umask(m)) {}
  ~umask_guard() { ::umask(saved_); }
  umask_guard(const umask_guard&) = delete;
  umask_guard& operator=(const umask_guard&) = delete;

 private:
  mode_t saved_;
};

unsigned mode_of(const std::string& path) { return spoold::unit::lstat_of(path).st_mode & 07777; }

}  // namespace

TEST_CASE("regression: queue directories and task files get exactly the configured modes, whatever the umask",
          "[regression][modes]") {
  const mode_t mask = GENERATE(mode_t{077}, mode_t{0}, mode_t{027});
  CAPTURE(mask);
  spoold::unit::temp_dir tmp;
  umask_guard umask(mask);
  const std::string task = spoold::unit::raw_spool(spoold::unit::raw_arg("k", "v"));

  SECTION("the host's queue directory, failed/, rescheduled and failed tasks, and .error files") {
    spoold::queue_config q;
    q.name = "q";
    q.dir = tmp / "spool/q";
    q.dir_mode = 0770;
    q.file_mode = 0660;
    auto dir = spoold::queue_dir::open(q);
    REQUIRE(dir.ok());
    CHECK(mode_of(tmp / "spool") == 0770);
    CHECK(mode_of(q.dir) == 0770);
    CHECK(mode_of(q.dir + "/failed") == 0770);

    spoold::unit::write_file(q.dir + "/uwsgi_spoolfile_on_t_1_1_1_1_1", task);
    spoold::unit::write_file(q.dir + "/uwsgi_spoolfile_on_t_1_2_1_1_1", task);
    auto retried = dir->claim(*spoold::task_ref::from_relative("uwsgi_spoolfile_on_t_1_1_1_1_1"), spoold::now_ns());
    REQUIRE(retried.status == spoold::claim_status::claimed);
    REQUIRE(dir->reschedule(*retried.task, 1, "busy", spoold::now_ns()).ok());
    CHECK(mode_of(q.dir + "/uwsgi_spoolfile_on_t_1_1_1_1_1") == 0660);
    auto failed = dir->claim(*spoold::task_ref::from_relative("uwsgi_spoolfile_on_t_1_2_1_1_1"), spoold::now_ns());
    REQUIRE(failed.status == spoold::claim_status::claimed);
    REQUIRE(dir->fail(*failed.task, 1, "no").ok());
    CHECK(mode_of(q.dir + "/failed/uwsgi_spoolfile_on_t_1_2_1_1_1") == 0660);

    // Long past the grace period for files being written, so unparsable.
    spoold::unit::write_file(q.dir + "/uwsgi_spoolfile_on_t_1_3_1_1_1", "\x11\xff\x00\x00");
    spoold::unit::set_mtime_ns(q.dir + "/uwsgi_spoolfile_on_t_1_3_1_1_1", 1'000'000'000);
    auto bad = dir->claim(*spoold::task_ref::from_relative("uwsgi_spoolfile_on_t_1_3_1_1_1"), spoold::now_ns());
    REQUIRE(bad.status == spoold::claim_status::unparsable);
    CHECK(mode_of(q.dir + "/failed/uwsgi_spoolfile_on_t_1_3_1_1_1.error") == 0660);
  }

  SECTION("the producer's queue directory, priority directory and task file (the C API)") {
    spoold_task_builder* b = spoold_task_builder_new();
    REQUIRE(b != nullptr);
    REQUIRE(spoold_task_builder_add_arg(b, "k", 1, "v", 1) == SPOOLD_CLIENT_OK);
    REQUIRE(spoold_task_builder_set_priority(b, 5) == SPOOLD_CLIENT_OK);
    REQUIRE(spoold_task_builder_set_sync(b, 0) == SPOOLD_CLIENT_OK);
    REQUIRE(spoold_task_builder_set_modes(b, 0660, 0770) == SPOOLD_CLIENT_OK);
    const std::string queue = tmp / "produced/q";
    char id[256];
    char err[512];
    const int code = spoold_enqueue(queue.c_str(), b, id, sizeof id, err, sizeof err);
    spoold_task_builder_free(b);
    REQUIRE(code == SPOOLD_CLIENT_OK);
    CHECK(mode_of(tmp / "produced") == 0770);
    CHECK(mode_of(queue) == 0770);
    CHECK(mode_of(queue + "/5") == 0770);
    CHECK(mode_of(queue + "/5/" + id) == 0660);
  }

  SECTION("a directory that exists keeps its mode") {
    REQUIRE(::mkdir((tmp / "mine").c_str(), 0700) == 0);
    REQUIRE(::chmod((tmp / "mine").c_str(), 0711) == 0);
    spoold_task_builder* b = spoold_task_builder_new();
    REQUIRE(b != nullptr);
    REQUIRE(spoold_task_builder_set_sync(b, 0) == SPOOLD_CLIENT_OK);
    REQUIRE(spoold_task_builder_set_modes(b, 0640, 0770) == SPOOLD_CLIENT_OK);
    char id[256];
    char err[512];
    const int code = spoold_enqueue((tmp / "mine").c_str(), b, id, sizeof id, err, sizeof err);
    spoold_task_builder_free(b);
    REQUIRE(code == SPOOLD_CLIENT_OK);
    CHECK(mode_of(tmp / "mine") == 0711);
    CHECK(mode_of(tmp / "mine" + "/" + id) == 0640);
  }
}

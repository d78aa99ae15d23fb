// The spooler board: exit notes, outages and backlogs shared by the master
// and the spoolers of Redis queues, tested across a real fork.
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include "spooler_board.hpp"

using spoold::entry_ref;
using spoold::exit_note;
using spoold::make_entry_ref;
using spoold::spooler_board;

namespace {
struct mapped_board {
  spooler_board* b = spoold::map_spooler_board();
  ~mapped_board() { spoold::unmap_spooler_board(b); }
};
}  // namespace

TEST_CASE("entry refs: the stream's priority and the id's two numbers", "[board]") {
  CHECK(make_entry_ref("spoold:q", "spoold:q", "1700000000000-3") == entry_ref{-1, 1700000000000, 3});
  CHECK(make_entry_ref("spoold:q", "spoold:q:p7", "5-0") == entry_ref{7, 5, 0});
  CHECK_FALSE(make_entry_ref("spoold:q", "spoold:q:p", "5-0"));
  CHECK_FALSE(make_entry_ref("spoold:q", "spoold:q:px", "5-0"));
  CHECK_FALSE(make_entry_ref("spoold:q", "other", "5-0"));
  CHECK_FALSE(make_entry_ref("spoold:q", "spoold:q", "5"));
  CHECK_FALSE(make_entry_ref("spoold:q", "spoold:q", "5-x"));
  CHECK_FALSE(make_entry_ref("spoold:q", "spoold:q", "-1"));
}

TEST_CASE("exit notes: the newest note of a pid, seen by another process", "[board]") {
  mapped_board m;
  REQUIRE(m.b != nullptr);
  CHECK_FALSE(m.b->find(42));
  exit_note between;
  between.pid = 42;
  between.wait_status = 9;
  m.b->post(between);
  exit_note inside;
  inside.pid = 42;
  inside.timed_out = true;
  inside.in_task = entry_ref{3, 10, 2};
  m.b->post(inside);
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    const auto n = m.b->find(42);
    const bool ok = n && n->timed_out && n->in_task == entry_ref{3, 10, 2} && !m.b->find(43);
    ::_exit(ok ? 0 : 1);
  }
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}

TEST_CASE("exit notes: the oldest are overwritten past the ring's size", "[board]") {
  mapped_board m;
  for (pid_t p = 1; p <= static_cast<pid_t>(spooler_board::k_notes) + 10; ++p) {
    exit_note n;
    n.pid = p;
    m.b->post(n);
  }
  CHECK_FALSE(m.b->find(5));
  CHECK(m.b->find(11));
  CHECK(m.b->find(static_cast<pid_t>(spooler_board::k_notes) + 10));
}

TEST_CASE("outages: the first to find a server down logs it, the first to reach it logs the recovery", "[board]") {
  mapped_board m;
  CHECK(m.b->report_down("redis://a", 100));
  CHECK_FALSE(m.b->report_down("redis://a", 200));
  CHECK(m.b->report_down("redis://b", 200));  // another server: its own outage
  CHECK(m.b->report_up("redis://a"));
  CHECK_FALSE(m.b->report_up("redis://a"));
  CHECK(m.b->report_down("redis://a", 300));  // a new outage
}

TEST_CASE("backlogs: the last reading of a queue, unless too old", "[board]") {
  mapped_board m;
  CHECK_FALSE(m.b->backlog("s at a", 1000));
  m.b->post_backlog("s at a", {4, 3, 2, 1, 5, 0}, 1000);
  m.b->post_backlog("t at a", {9, 9, 9, 9, 9, 0}, 1000);
  const auto b = m.b->backlog("s at a", 2000);
  REQUIRE(b);
  CHECK(b->waiting == 4);
  CHECK(b->delayed == 3);
  CHECK(b->ignored == 2);
  CHECK(b->in_flight == 1);
  CHECK(b->failed == 5);
  CHECK(b->read_at_ms == 1000);
  CHECK_FALSE(m.b->backlog("s at a", 1000 + spooler_board::k_backlog_max_age_ms + 1));
}

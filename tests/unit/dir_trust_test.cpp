// Who may write a queue (host/dir_trust.hpp): the queue directory and the
// folder that holds it are refused when others can write them, each problem
// naming the path, its mode and owner and the fix; task files are run only
// when the host's user, root or a member of dir_group owns them.
#include "dir_trust.hpp"

#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <optional>
#include <string>
#include <utility>

#include "accounts.hpp"
#include "support/temp_dir.hpp"

using Catch::Contains;

namespace {

std::string all(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& l : lines) out += "\n  " + l;
  return out.empty() ? "(none)" : out;
}

// <tmp>/holder/q with the given modes (set exactly, whatever the umask).
struct queue_dirs {
  spoold::unit::temp_dir tmp;
  std::string holder = tmp / "holder";
  spoold::queue_config q;

  queue_dirs(mode_t holder_mode, mode_t dir_mode) {
    REQUIRE(::mkdir(holder.c_str(), 0700) == 0);
    REQUIRE(::chmod(holder.c_str(), holder_mode) == 0);
    q.name = "q";
    q.dir = holder + "/q";
    if (dir_mode != 0) {
      REQUIRE(::mkdir(q.dir.c_str(), 0700) == 0);
      REQUIRE(::chmod(q.dir.c_str(), dir_mode) == 0);
    }
  }
  ~queue_dirs() { ::chmod(holder.c_str(), 0700); }
};

}  // namespace

TEST_CASE("dir_trust: private directories are trusted", "[dir_trust]") {
  queue_dirs d(0755, 0700);
  const auto r = spoold::check_dir_trust(d.q);
  INFO(all(r.problems));
  CHECK(r.problems.empty());
  CHECK(r.notes.empty());
}

TEST_CASE("dir_trust: a queue directory every user can write is refused with its mode and the chmod", "[dir_trust]") {
  queue_dirs d(0755, 0777);
  const auto r = spoold::check_dir_trust(d.q);
  REQUIRE(r.problems.size() == 1);
  const std::string me = spoold::user_name(::geteuid());
  CHECK_THAT(r.problems[0], Contains("queue 'q': directory " + d.q.dir + " (mode 0777, owner " + me + ":") &&
                                Contains("can be written by every user") && Contains("chmod go-w " + d.q.dir));
}

TEST_CASE("dir_trust: group write needs the queue's dir_group", "[dir_trust]") {
  queue_dirs d(0755, 0775);
  const gid_t group = ::getegid();
  const std::string group_text = spoold::group_name(group);
  SECTION("without dir_group: refused, naming both fixes") {
    const auto r = spoold::check_dir_trust(d.q);
    REQUIRE(r.problems.size() == 1);
    CHECK_THAT(r.problems[0], Contains("(mode 0775,") && Contains("can be written by group " + group_text) &&
                                  Contains("chmod g-w " + d.q.dir) &&
                                  Contains("set dir_group = \"" + group_text + "\" for queue 'q'"));
  }
  SECTION("with dir_group naming the directory's group: trusted, and said") {
    REQUIRE(::chmod(d.q.dir.c_str(), 02770) == 0);
    d.q.dir_group = group_text;
    d.q.dir_gid = group;
    const auto r = spoold::check_dir_trust(d.q);
    INFO(all(r.problems));
    CHECK(r.problems.empty());
    REQUIRE(r.notes.size() == 1);
    CHECK(r.notes[0] == "queue q: directory " + d.q.dir + " is writable by group " + group_text + " (dir_group)");
  }
  SECTION("with another dir_group: refused, the fix gives the directory to that group") {
    d.q.dir_group = "other";
    d.q.dir_gid = group + 4242;
    const auto r = spoold::check_dir_trust(d.q);
    REQUIRE(r.problems.size() == 1);
    CHECK_THAT(r.problems[0], Contains("which is not the queue's dir_group other") &&
                                  Contains("chgrp other " + d.q.dir + " && chmod 2770 " + d.q.dir));
  }
}

TEST_CASE("dir_trust: the folder that holds the queue", "[dir_trust]") {
  SECTION("writable by every user: refused") {
    queue_dirs d(0777, 0700);
    const auto r = spoold::check_dir_trust(d.q);
    REQUIRE(r.problems.size() == 1);
    CHECK_THAT(r.problems[0], Contains("folder " + d.holder + " (mode 0777, owner ") && Contains("which holds the queue directory") &&
                                  Contains("move the queue directory away") && Contains("chmod go-w " + d.holder) &&
                                  Contains("chmod +t " + d.holder));
  }
  SECTION("writable by every user but sticky, as /tmp is: trusted") {
    queue_dirs d(01777, 0700);
    const auto r = spoold::check_dir_trust(d.q);
    INFO(all(r.problems));
    CHECK(r.problems.empty());
  }
}

TEST_CASE("dir_trust: a directory not made yet is judged by dir_mode", "[dir_trust]") {
  queue_dirs d(0755, 0);
  SECTION("0700 is fine") {
    const auto r = spoold::check_dir_trust(d.q);
    INFO(all(r.problems));
    CHECK(r.problems.empty());
  }
  SECTION("0777 is refused, naming dir_mode") {
    d.q.dir_mode = 0777;
    const auto r = spoold::check_dir_trust(d.q);
    REQUIRE(r.problems.size() == 1);
    CHECK_THAT(r.problems[0], Contains("does not exist yet") && Contains("dir_mode 0777") &&
                                  Contains("set dir_mode = \"0700\""));
  }
}

TEST_CASE("dir_trust: owned by another user", "[dir_trust]") {
  if (::geteuid() != 0) {
    WARN("skipped: only root can give a directory to another user");
    return;
  }
  queue_dirs d(0755, 0700);
  REQUIRE(::chown(d.q.dir.c_str(), 65534, static_cast<gid_t>(-1)) == 0);
  SECTION("a host running as root") {
    d.q.host_uid = 0;
    const auto r = spoold::check_dir_trust(d.q);
    REQUIRE(r.problems.size() == 1);
    CHECK_THAT(r.problems[0], Contains("(mode 0700, owner " + spoold::user_name(65534) + ":") &&
                                  Contains("is owned by " + spoold::user_name(65534) + ", not by root (the host's user)") &&
                                  Contains("chown root " + d.q.dir));
  }
  SECTION("a host running as another user") {
    d.q.host_uid = 4242;
    const auto r = spoold::check_dir_trust(d.q);
    REQUIRE(r.problems.size() == 1);
    CHECK_THAT(r.problems[0], Contains("who is neither root nor the host's user 4242") && Contains("chown 4242 " + d.q.dir));
  }
  SECTION("the host's user owns it") {
    d.q.host_uid = 65534;
    const auto r = spoold::check_dir_trust(d.q);
    INFO(all(r.problems));
    CHECK(r.problems.empty());
  }
}

TEST_CASE("task_owners: the host's user, root, and members of dir_group", "[dir_trust]") {
  spoold::queue_config q;
  q.host_uid = 4242;
  SECTION("without dir_group") {
    spoold::task_owners owners(q);
    CHECK(owners.trusted(4242));
    CHECK(owners.trusted(0));
    CHECK_FALSE(owners.trusted(4243));
    CHECK_THAT(owners.refusal(4243), Contains("task file owned by uid 4243") &&
                                         Contains("neither the host's user (") && Contains("nor root") &&
                                         Contains("no dir_group"));
  }
  SECTION("with dir_group: root is trusted, a user without an entry is not, twice") {
    // root's primary group is 0 in every passwd.
    q.dir_group = "root";
    q.dir_gid = 0;
    spoold::task_owners owners(q);
    CHECK(owners.trusted(0));
    CHECK_FALSE(owners.trusted(4243));  // no such user: no groups
    CHECK_FALSE(owners.trusted(4243));
    CHECK_THAT(owners.refusal(4243), Contains("nor in dir_group root"));
  }
  SECTION("with dir_group: a member by primary group (nobody in nogroup) is trusted") {
    const auto nobody = spoold::find_group("nogroup");
    if (spoold::user_name(65534) != "nobody" || !nobody || *nobody != 65534) {
      WARN("skipped: no user nobody in group nogroup (65534) here");
      return;
    }
    q.dir_group = "nogroup";
    q.dir_gid = 65534;
    spoold::task_owners owners(q);
    CHECK(owners.trusted(65534));
    CHECK_THAT(owners.refusal(65534), Contains("task file owned by uid 65534 (nobody)"));
  }
  SECTION("the sandbox user: its spoolers rewrite the tasks they retry") {
    q.sandbox.enabled = true;
    q.sandbox.uid = 4300;
    spoold::task_owners owners(q);
    CHECK(owners.trusted(4300));
    CHECK_FALSE(owners.trusted(4301));
  }
}

TEST_CASE("accounts: membership by a supplementary group", "[dir_trust]") {
  // Any group of this machine's database that lists a member whose primary
  // group is another one (Debian: ssl-cert lists postgres).
  ::setgrent();
  std::optional<std::pair<uid_t, gid_t>> found;
  while (group* g = ::getgrent()) {
    for (char** m = g->gr_mem; m != nullptr && *m != nullptr && !found; ++m) {
      if (passwd* pw = ::getpwnam(*m); pw != nullptr && pw->pw_gid != g->gr_gid) found = {{pw->pw_uid, g->gr_gid}};
    }
    if (found) break;
  }
  ::endgrent();
  if (!found) {
    WARN("skipped: no group here lists a member by supplementary membership");
    return;
  }
  CHECK(spoold::user_in_group(found->first, found->second));
  spoold::queue_config q;
  q.host_uid = 4242;
  q.dir_group = spoold::group_name(found->second);
  q.dir_gid = found->second;
  spoold::task_owners owners(q);
  CHECK(owners.trusted(found->first));
}

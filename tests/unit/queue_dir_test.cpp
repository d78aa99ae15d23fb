// A queue's directory (SPEC §2, §3, §9): claiming a task under a lock that
// conflicts with uWSGI's, leaving alone anything that is not a regular task
// file, and rewriting or moving a task without ever losing it.
#include "queue_dir.hpp"

#include <dlfcn.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <chrono>
#include <cstdarg>
#include <cstdint>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "posix.hpp"
#include "spool_file.hpp"
#include "support/temp_dir.hpp"

using namespace std::string_literals;
using Catch::Contains;
using spoold::claim_status;
using spoold::task_ref;

// A seam for the one race a test cannot cause on demand: the task file
// changing between claim()'s open() and its lock. This definition takes the
// place of libc's fcntl() in the whole test binary and forwards every call;
// only while a test has set g_before_ofd_lock does it run that hook once,
// just before the F_OFD_SETLK that claim() takes.
namespace {
std::function<void()> g_before_ofd_lock;

// Clears the hook when a test ends, even one that failed half-way.
struct ofd_lock_hook_guard {
  ofd_lock_hook_guard() = default;
  ofd_lock_hook_guard(const ofd_lock_hook_guard&) = delete;
  ofd_lock_hook_guard& operator=(const ofd_lock_hook_guard&) = delete;
  ~ofd_lock_hook_guard() { g_before_ofd_lock = nullptr; }
};
}  // namespace

extern "C" int fcntl(int fd, int cmd, ...) {
  va_list ap;
  va_start(ap, cmd);
  // glibc reads the optional argument the same way, whatever cmd is.
  void* arg = va_arg(ap, void*);
  va_end(ap);
  using fcntl_fn = int (*)(int, int, ...);
  static const auto real = reinterpret_cast<fcntl_fn>(::dlsym(RTLD_NEXT, "fcntl"));
  if (cmd == F_OFD_SETLK && g_before_ofd_lock) {
    auto hook = std::move(g_before_ofd_lock);
    g_before_ofd_lock = nullptr;
    hook();
  }
  return real(fd, cmd, arg);
}

namespace {

namespace unit = spoold::unit;

constexpr std::int64_t k_second = 1'000'000'000;

std::string status_name(claim_status s) {
  switch (s) {
    case claim_status::claimed: return "claimed";
    case claim_status::busy: return "busy";
    case claim_status::gone: return "gone";
    case claim_status::not_due: return "not_due";
    case claim_status::incomplete: return "incomplete";
    case claim_status::unparsable: return "unparsable";
    case claim_status::rejected: return "rejected";
    case claim_status::io_error: return "io_error";
  }
  return "?";
}

std::string encode(const std::vector<spoold::owned_arg>& args, std::string_view body = {}) {
  auto bytes = spoold::encode_spool_file(args, body);
  REQUIRE(bytes.ok());
  return *bytes;
}

// A queue in <tmp>/spool/q, opened, with helpers to put files in it.
class queue_fixture {
 public:
  queue_fixture() {
    cfg_.name = "q";
    cfg_.dir = tmp_ / "spool/q";
    cfg_.plugins = {"log_writer"};
    auto opened = spoold::queue_dir::open(cfg_);
    INFO((opened.ok() ? "" : opened.err().message));
    REQUIRE(opened.ok());
    dir_.emplace(std::move(*opened));
  }

  spoold::queue_dir& dir() { return *dir_; }
  const std::string& path() const { return cfg_.dir; }
  const unit::temp_dir& tmp() const { return tmp_; }
  std::string file(const task_ref& ref) const { return cfg_.dir + "/" + ref.relative(); }
  std::string failed(const std::string& name) const { return cfg_.dir + "/failed/" + name; }

  // Writes a task file directly (not through the code under test) with the
  // given mtime; priority "N" puts it in <dir>/N/.
  task_ref put(std::string_view bytes, std::int64_t mtime_ns, const std::string& priority = "",
               const std::string& name = "uwsgi_spoolfile_on_test_1_1_1_1_1") {
    if (!priority.empty()) ::mkdir((cfg_.dir + "/" + priority).c_str(), 0700);
    task_ref ref{priority, name};
    unit::write_file(file(ref), bytes);
    unit::set_mtime_ns(file(ref), mtime_ns);
    return ref;
  }

  spoold::claim_result claim(const task_ref& ref, std::int64_t now, bool check_due = true) {
    auto r = dir_->claim(ref, now, check_due);
    UNSCOPED_INFO("claim " << ref.relative() << ": " << status_name(r.status) << " " << r.reason);
    return r;
  }

 private:
  unit::temp_dir tmp_;
  spoold::queue_config cfg_;
  std::optional<spoold::queue_dir> dir_;
};

std::vector<std::string> temp_files_in(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& n : unit::list_dir(dir)) {
    if (n.rfind(".spoold-tmp-", 0) == 0) out.push_back(n);
  }
  return out;
}

// Runs fn in a child process and returns its exit status, or -1 when it
// does not finish within the deadline (then it is killed).
int run_in_child(const std::function<int()>& fn, std::chrono::milliseconds deadline) {
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::alarm(static_cast<unsigned>(deadline.count() / 1000 + 2));
    ::_exit(fn());
  }
  const auto until = std::chrono::steady_clock::now() + deadline;
  int status = 0;
  for (;;) {
    const pid_t done = ::waitpid(pid, &status, WNOHANG);
    if (done == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    if (std::chrono::steady_clock::now() > until) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      return -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

// Waits up to deadline for fd to become readable.
bool wait_readable(int fd, std::chrono::milliseconds deadline) {
  pollfd p{fd, POLLIN, 0};
  for (;;) {
    const int n = ::poll(&p, 1, static_cast<int>(deadline.count()));
    if (n >= 0) return n == 1;
    if (errno != EINTR) return false;
  }
}

}  // namespace

TEST_CASE("queue_dir::open creates the directory and failed/ private, and refuses what it cannot use", "[queue_dir]") {
  unit::temp_dir tmp;
  spoold::queue_config cfg;
  cfg.name = "mail";
  cfg.dir = tmp / "a/b/mail";

  SECTION("created with mode 0700") {
    auto q = spoold::queue_dir::open(cfg);
    INFO((q.ok() ? "" : q.err().message));
    REQUIRE(q.ok());
    CHECK(q->path() == cfg.dir);
    CHECK(S_ISDIR(unit::lstat_of(cfg.dir).st_mode));
    CHECK((unit::lstat_of(cfg.dir).st_mode & 07777) == 0700);
    CHECK(S_ISDIR(unit::lstat_of(cfg.dir + "/failed").st_mode));
    CHECK((unit::lstat_of(cfg.dir + "/failed").st_mode & 07777) == 0700);
    CHECK(unit::list_dir(cfg.dir) == std::vector<std::string>{"failed"});
  }
  SECTION("the configured dir_mode") {
    cfg.dir_mode = 0750;
    auto q = spoold::queue_dir::open(cfg);
    REQUIRE(q.ok());
    CHECK((unit::lstat_of(cfg.dir).st_mode & 07777) == 0750);
    CHECK((unit::lstat_of(cfg.dir + "/failed").st_mode & 07777) == 0750);
  }
  SECTION("an existing queue is opened as it is, tasks untouched") {
    REQUIRE(spoold::make_dirs(cfg.dir + "/failed", 0700).ok());
    unit::write_file(cfg.dir + "/uwsgi_spoolfile_on_x", "data");
    auto q = spoold::queue_dir::open(cfg);
    REQUIRE(q.ok());
    CHECK(unit::read_file(cfg.dir + "/uwsgi_spoolfile_on_x") == "data");
  }
  SECTION("failed/ that is a file") {
    REQUIRE(spoold::make_dirs(cfg.dir, 0700).ok());
    unit::write_file(cfg.dir + "/failed", "");
    auto q = spoold::queue_dir::open(cfg);
    REQUIRE_FALSE(q.ok());
    CHECK_THAT(q.err().message, Contains("queue 'mail'") && Contains(cfg.dir + "/failed"));
  }
  SECTION("failed/ that is a symbolic link to a directory") {
    REQUIRE(spoold::make_dirs(cfg.dir, 0700).ok());
    REQUIRE(::mkdir((tmp / "elsewhere").c_str(), 0700) == 0);
    REQUIRE(::symlink((tmp / "elsewhere").c_str(), (cfg.dir + "/failed").c_str()) == 0);
    auto q = spoold::queue_dir::open(cfg);
    REQUIRE_FALSE(q.ok());
    CHECK_THAT(q.err().message, Contains(cfg.dir + "/failed"));
  }
  SECTION("a path through a regular file") {
    unit::write_file(tmp / "a", "");
    auto q = spoold::queue_dir::open(cfg);
    REQUIRE_FALSE(q.ok());
    CHECK_THAT(q.err().message, Contains("queue 'mail'") && Contains(tmp / "a"));
  }
}

TEST_CASE("task_ref::from_relative accepts only N/name and name", "[queue_dir]") {
  auto top = task_ref::from_relative("uwsgi_spoolfile_on_x");
  REQUIRE(top.has_value());
  CHECK(top->priority.empty());
  CHECK(top->name == "uwsgi_spoolfile_on_x");
  CHECK(top->relative() == "uwsgi_spoolfile_on_x");
  auto prio = task_ref::from_relative("12/uwsgi_spoolfile_on_x");
  REQUIRE(prio.has_value());
  CHECK(prio->priority == "12");
  CHECK(prio->name == "uwsgi_spoolfile_on_x");
  CHECK(prio->relative() == "12/uwsgi_spoolfile_on_x");

  for (const char* bad : {"", "x", "../uwsgi_spoolfile_on_x", "failed/uwsgi_spoolfile_on_x", "1/2/uwsgi_spoolfile_on_x",
                          "/uwsgi_spoolfile_on_x", "1/", "1/../uwsgi_spoolfile_on_x", "uwsgi_spoolfile_on_x/",
                          "1234567890/uwsgi_spoolfile_on_x", "a1/uwsgi_spoolfile_on_x"}) {
    INFO("'" << bad << "'");
    CHECK_FALSE(task_ref::from_relative(bad).has_value());
  }
}

TEST_CASE("claim takes a due task, parsed, under a lock that keeps others out", "[queue_dir]") {
  queue_fixture f;
  const std::int64_t now = spoold::now_ns();
  const std::string bytes = encode({{"type", "mail"}, {"spoold.attempt", "2"}}, "the body");
  const auto ref = f.put(bytes, now - k_second);

  auto r = f.claim(ref, now);
  REQUIRE(r.status == claim_status::claimed);
  REQUIRE(r.task.has_value());
  auto& task = *r.task;
  CHECK(task.ref.relative() == ref.relative());
  CHECK(std::string(task.bytes.begin(), task.bytes.end()) == bytes);
  CHECK(task.view.arg("type") == std::optional<std::string_view>("mail"));
  CHECK(task.view.body == "the body");
  CHECK(task.attempt == 2);
  CHECK(task.fd.valid());
  CHECK(r.identity == spoold::identity_of(unit::lstat_of(f.file(ref))));

  SECTION("a second claim while it is held is busy, and the file is left as it is") {
    auto again = f.claim(ref, now);
    CHECK(again.status == claim_status::busy);
    CHECK_FALSE(again.task.has_value());
    CHECK(unit::read_file(f.file(ref)) == bytes);
  }
  SECTION("the lock goes with the descriptor") {
    r.task.reset();
    CHECK(f.claim(ref, now).status == claim_status::claimed);
  }
  SECTION("remove() deletes it") {
    REQUIRE(f.dir().remove(task).ok());
    CHECK_FALSE(unit::exists(f.file(ref)));
    CHECK(unit::list_dir(f.path()) == std::vector<std::string>{"failed"});
  }
}

// A claimed task's view points into its bytes. A file of up to 15 bytes
// fits in std::string's inline buffer, whose address changes when the
// claimed_task is moved (into the result): the views must follow.
TEST_CASE("claim of a tiny task gives a view into the claimed bytes", "[queue_dir]") {
  queue_fixture f;
  const std::int64_t now = spoold::now_ns();
  const std::string bytes = encode({{"a", "b"}}, "hi");
  REQUIRE(bytes.size() == 12);
  const auto ref = f.put(bytes, now - k_second);

  auto r = f.claim(ref, now);
  REQUIRE(r.status == claim_status::claimed);
  const auto& task = *r.task;
  REQUIRE(std::string(task.bytes.begin(), task.bytes.end()) == bytes);
  REQUIRE(task.view.args.size() == 1);
  const char* begin = task.bytes.data();
  const char* end = begin + task.bytes.size();
  CHECK((task.view.args[0].key.data() >= begin && task.view.args[0].key.data() < end));
  CHECK((task.view.body.data() >= begin && task.view.body.data() <= end));
  CHECK(task.view.arg("a") == std::optional<std::string_view>("b"));
  CHECK(task.view.body == "hi");
}

TEST_CASE("claim finds a task in its priority directory", "[queue_dir]") {
  queue_fixture f;
  const std::int64_t now = spoold::now_ns();
  const auto ref = f.put(encode({{"priority", "3"}}), now - k_second, "3");
  auto r = f.claim(ref, now);
  REQUIRE(r.status == claim_status::claimed);
  CHECK(r.task->view.arg("priority") == std::optional<std::string_view>("3"));
  CHECK(f.claim(task_ref{"4", ref.name}, now).status == claim_status::gone);
  CHECK(f.claim(task_ref{"", ref.name}, now).status == claim_status::gone);
}

TEST_CASE("claim leaves a task that is not due yet, and says when it will be", "[queue_dir]") {
  queue_fixture f;
  const std::int64_t now = spoold::now_ns();

  SECTION("mtime in the future, to the nanosecond") {
    const std::int64_t due = now + 3 * k_second + 123'456'789;
    const auto ref = f.put(encode({{"k", "v"}}), due);
    auto r = f.claim(ref, now);
    CHECK(r.status == claim_status::not_due);
    CHECK(r.due_ns == due);
    CHECK_FALSE(r.task.has_value());
    CHECK(f.claim(ref, due - 1).status == claim_status::not_due);
    CHECK(f.claim(ref, due).status == claim_status::claimed);
  }
  SECTION("an `at` key in the future with an old mtime") {
    const std::int64_t at_s = now / k_second + 100;
    const auto ref = f.put(encode({{"at", std::to_string(at_s) + ".5"}}), now - k_second);
    auto r = f.claim(ref, now);
    CHECK(r.status == claim_status::not_due);
    CHECK(r.due_ns == at_s * k_second + 500'000'000);
    // The lock is not kept for a task that is not due.
    CHECK(f.claim(ref, now).status == claim_status::not_due);
  }
  SECTION("the later of mtime and `at` wins") {
    const std::int64_t mtime = now + 200 * k_second;
    const auto ref = f.put(encode({{"at", std::to_string(now / k_second + 100)}}), mtime);
    auto r = f.claim(ref, now);
    CHECK(r.status == claim_status::not_due);
    CHECK(r.due_ns == mtime);
  }
  SECTION("an `at` in the past does not delay it") {
    const auto ref = f.put(encode({{"at", "1000000000"}}), now - k_second);
    CHECK(f.claim(ref, now).status == claim_status::claimed);
  }
  SECTION("check_due = false takes it anyway") {
    const auto ref = f.put(encode({{"k", "v"}}), now + 60 * k_second);
    auto r = f.claim(ref, now, false);
    CHECK(r.status == claim_status::claimed);
  }
}

TEST_CASE("claim rejects what is not a regular task file and leaves it alone", "[queue_dir]") {
  queue_fixture f;
  const std::int64_t now = spoold::now_ns();
  const std::string name = "uwsgi_spoolfile_on_strange";
  const task_ref ref{"", name};

  SECTION("a symbolic link: never followed, the target untouched") {
    const std::string target = f.tmp() / "target";
    const std::string bytes = encode({{"k", "v"}}, "secret");
    unit::write_file(target, bytes);
    unit::set_mtime_ns(target, now - 60 * k_second);
    const std::int64_t target_mtime = unit::mtime_ns_of(target);
    REQUIRE(::symlink(target.c_str(), f.file(ref).c_str()) == 0);

    auto r = f.claim(ref, now);
    CHECK(r.status == claim_status::rejected);
    CHECK_THAT(r.reason, Contains("symbolic link"));
    CHECK(unit::read_file(target) == bytes);
    CHECK(unit::mtime_ns_of(target) == target_mtime);
    CHECK(S_ISLNK(unit::lstat_of(f.file(ref)).st_mode));
    CHECK(unit::list_dir(f.path() + "/failed").empty());
  }
  SECTION("a symbolic link to a truncated file is not moved to failed/") {
    const std::string target = f.tmp() / "target";
    unit::write_file(target, "\x11\x10"s);
    unit::set_mtime_ns(target, now - 60 * k_second);
    REQUIRE(::symlink(target.c_str(), f.file(ref).c_str()) == 0);
    CHECK(f.claim(ref, now).status == claim_status::rejected);
    CHECK(unit::read_file(target) == "\x11\x10"s);
    CHECK(unit::list_dir(f.path() + "/failed").empty());
  }
  SECTION("a FIFO: rejected without blocking") {
    REQUIRE(::mkfifo(f.file(ref).c_str(), 0600) == 0);
    // In a child with a deadline, so that a claim that blocks on the FIFO
    // fails the test instead of hanging it.
    const int status = run_in_child(
        [&] { return static_cast<int>(f.dir().claim(ref, now).status); }, std::chrono::milliseconds(5000));
    CHECK(status == static_cast<int>(claim_status::rejected));
    CHECK(S_ISFIFO(unit::lstat_of(f.file(ref)).st_mode));
    CHECK(unit::list_dir(f.path() + "/failed").empty());
  }
  SECTION("a directory") {
    REQUIRE(::mkdir(f.file(ref).c_str(), 0700) == 0);
    CHECK(f.claim(ref, now).status == claim_status::rejected);
    CHECK(S_ISDIR(unit::lstat_of(f.file(ref)).st_mode));
  }
  SECTION("names that leave the directory") {
    unit::write_file(f.tmp() / "uwsgi_spoolfile_on_outside", encode({}));
    CHECK(f.claim(task_ref{"", "../../uwsgi_spoolfile_on_outside"}, now).status == claim_status::rejected);
    CHECK(f.claim(task_ref{"../..", "uwsgi_spoolfile_on_outside"}, now).status == claim_status::rejected);
    CHECK(f.claim(task_ref{"failed", "uwsgi_spoolfile_on_outside"}, now).status == claim_status::rejected);
    CHECK(f.claim(task_ref{"", "not_a_task"}, now).status == claim_status::rejected);
    CHECK(unit::exists(f.tmp() / "uwsgi_spoolfile_on_outside"));
  }
  SECTION("a priority directory that is a symbolic link is not followed") {
    REQUIRE(::mkdir((f.tmp() / "other").c_str(), 0700) == 0);
    const std::string bytes = encode({{"k", "v"}});
    unit::write_file(f.tmp() / ("other/" + name), bytes);
    unit::set_mtime_ns(f.tmp() / ("other/" + name), now - 60 * k_second);
    REQUIRE(::symlink((f.tmp() / "other").c_str(), (f.path() + "/7").c_str()) == 0);
    auto r = f.claim(task_ref{"7", name}, now);
    CHECK(r.status != claim_status::claimed);
    CHECK_FALSE(r.task.has_value());
    CHECK(unit::read_file(f.tmp() / ("other/" + name)) == bytes);
  }
}

TEST_CASE("claim skips a young short file and fails an old one with the reason", "[queue_dir]") {
  queue_fixture f;
  const std::int64_t now = spoold::now_ns();

  SECTION("a young empty file is incomplete until the grace period ends") {
    const auto ref = f.put("", now - k_second);
    auto r = f.claim(ref, now);
    CHECK(r.status == claim_status::incomplete);
    CHECK(r.due_ns == unit::mtime_ns_of(f.file(ref)) + spoold::k_incomplete_grace_ns);
    CHECK_THAT(r.reason, Contains("empty"));
    CHECK(unit::exists(f.file(ref)));
    CHECK(unit::list_dir(f.path() + "/failed").empty());
  }
  SECTION("a young file shorter than its header says is incomplete") {
    const std::string full = encode({{"hello", "world"}});
    const auto ref = f.put(full.substr(0, full.size() - 3), now - k_second);
    CHECK(f.claim(ref, now).status == claim_status::incomplete);
    CHECK(unit::read_file(f.file(ref)) == full.substr(0, full.size() - 3));
  }
  SECTION("an old truncated file is moved to failed/ unchanged with a .error beside it") {
    const std::string full = encode({{"hello", "world"}});
    const std::string cut = full.substr(0, full.size() - 3);
    const auto ref = f.put(cut, now - 60 * k_second);
    auto r = f.claim(ref, now);
    CHECK(r.status == claim_status::unparsable);
    CHECK_THAT(r.reason, Contains("announces 14 bytes"));
    CHECK_FALSE(unit::exists(f.file(ref)));
    CHECK(unit::read_file(f.failed(ref.name)) == cut);
    const std::string error = unit::read_file(f.failed(ref.name + ".error"));
    CHECK_THAT(error, Contains(f.file(ref)) && Contains("announces 14 bytes of args but the file has 11"));
    CHECK(unit::list_dir(f.path() + "/failed") == std::vector<std::string>{ref.name, ref.name + ".error"});
    CHECK(temp_files_in(f.path() + "/failed").empty());
  }
  SECTION("an old empty file is unparsable") {
    const auto ref = f.put("", now - 11 * k_second);
    CHECK(f.claim(ref, now).status == claim_status::unparsable);
    CHECK_THAT(unit::read_file(f.failed(ref.name + ".error")), Contains("empty"));
  }
  SECTION("a malformed file is failed at once, however young") {
    const std::string bad = "\x11\x03\x00\x00\x00\x00x"s;  // a zero-length key
    const auto ref = f.put(bad, now);
    auto r = f.claim(ref, now);
    CHECK(r.status == claim_status::unparsable);
    CHECK_THAT(r.reason, Contains("empty key"));
    CHECK(unit::read_file(f.failed(ref.name)) == bad);
  }
  SECTION("a malformed file in a priority directory goes to the queue's failed/") {
    const auto ref = f.put("\x11\x01\x00\x00x"s, now, "2");
    CHECK(f.claim(ref, now).status == claim_status::unparsable);
    CHECK(unit::exists(f.failed(ref.name)));
    CHECK_FALSE(unit::exists(f.file(ref)));
  }
  SECTION("a file over 1 GiB is refused without reading it") {
    const auto ref = f.put("", now - 60 * k_second);
    REQUIRE(::truncate(f.file(ref).c_str(), (off_t{1} << 30) + 1) == 0);  // sparse
    auto r = f.claim(ref, now);
    CHECK(r.status == claim_status::unparsable);
    CHECK_THAT(r.reason, Contains("1 GiB"));
    CHECK(unit::exists(f.failed(ref.name)));
  }
}

TEST_CASE("claim is busy while anyone else holds a lock on the task", "[queue_dir]") {
  queue_fixture f;
  const std::int64_t now = spoold::now_ns();
  const std::string bytes = encode({{"k", "v"}});
  const auto ref = f.put(bytes, now - k_second);

  SECTION("an open-file-description lock of another open()") {
    const int fd = ::open(f.file(ref).c_str(), O_RDWR | O_CLOEXEC);
    REQUIRE(fd >= 0);
    struct flock fl {};
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    REQUIRE(::fcntl(fd, F_OFD_SETLK, &fl) == 0);
    CHECK(f.claim(ref, now).status == claim_status::busy);
    ::close(fd);
    CHECK(f.claim(ref, now).status == claim_status::claimed);
  }
  SECTION("a read lock conflicts too") {
    const int fd = ::open(f.file(ref).c_str(), O_RDONLY | O_CLOEXEC);
    REQUIRE(fd >= 0);
    struct flock fl {};
    fl.l_type = F_RDLCK;
    fl.l_whence = SEEK_SET;
    REQUIRE(::fcntl(fd, F_OFD_SETLK, &fl) == 0);
    CHECK(f.claim(ref, now).status == claim_status::busy);
    ::close(fd);
  }
  SECTION("uWSGI's fcntl(F_SETLK, F_WRLCK) record lock, held by another process") {
    int locked[2];
    int release[2];
    REQUIRE(::pipe2(locked, O_CLOEXEC) == 0);
    REQUIRE(::pipe2(release, O_CLOEXEC) == 0);
    const std::string path = f.file(ref);
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      ::alarm(10);  // never outlive a broken parent
      ::close(locked[0]);
      ::close(release[1]);  // or the read below never sees end-of-file
      const int fd = ::open(path.c_str(), O_RDWR);
      struct flock fl {};
      fl.l_type = F_WRLCK;
      fl.l_whence = SEEK_SET;
      if (fd < 0 || ::fcntl(fd, F_SETLK, &fl) != 0) ::_exit(1);
      const char c = 'L';
      if (::write(locked[1], &c, 1) != 1) ::_exit(2);
      char ignored = 0;
      (void)!::read(release[0], &ignored, 1);
      ::_exit(0);
    }
    ::close(locked[1]);
    ::close(release[0]);
    REQUIRE(wait_readable(locked[0], std::chrono::milliseconds(5000)));
    char c = 0;
    REQUIRE(::read(locked[0], &c, 1) == 1);
    CHECK(c == 'L');

    CHECK(f.claim(ref, now).status == claim_status::busy);
    CHECK(unit::read_file(path) == bytes);

    ::close(release[1]);
    int status = 0;
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    pid_t done = 0;
    while ((done = ::waitpid(pid, &status, WNOHANG)) == 0 && std::chrono::steady_clock::now() < until) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    if (done == 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
    }
    ::close(locked[0]);
    REQUIRE(done == pid);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
    CHECK(f.claim(ref, now).status == claim_status::claimed);
  }
  SECTION("a record lock held by this same process conflicts as well") {
    const int fd = ::open(f.file(ref).c_str(), O_RDWR | O_CLOEXEC);
    REQUIRE(fd >= 0);
    struct flock fl {};
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    REQUIRE(::fcntl(fd, F_SETLK, &fl) == 0);
    CHECK(f.claim(ref, now).status == claim_status::busy);
    ::close(fd);
  }
}

TEST_CASE("claim reports a task that went away or was replaced while it was being opened", "[queue_dir]") {
  queue_fixture f;
  const std::int64_t now = spoold::now_ns();
  const auto ref = f.put(encode({{"v", "1"}}), now - k_second);
  const std::string path = f.file(ref);
  const ofd_lock_hook_guard guard;

  SECTION("no such file") {
    auto r = f.claim(task_ref{"", "uwsgi_spoolfile_on_missing"}, now);
    CHECK(r.status == claim_status::gone);
  }
  SECTION("no such priority directory") {
    CHECK(f.claim(task_ref{"9", ref.name}, now).status == claim_status::gone);
  }
  SECTION("unlinked after open, before the lock") {
    g_before_ofd_lock = [&] { CHECK(::unlink(path.c_str()) == 0); };
    auto r = f.claim(ref, now);
    CHECK_FALSE(g_before_ofd_lock);
    CHECK(r.status == claim_status::gone);
    CHECK_FALSE(r.task.has_value());
    CHECK(unit::list_dir(f.path() + "/failed").empty());
  }
  SECTION("replaced by rename() after open: the new file is claimed next time") {
    const std::string replacement = encode({{"v", "2"}}, "the replacement's body");
    g_before_ofd_lock = [&] {
      unit::write_file(path + ".new", replacement);
      unit::set_mtime_ns(path + ".new", now - k_second);
      CHECK(::rename((path + ".new").c_str(), path.c_str()) == 0);
    };
    auto r = f.claim(ref, now);
    CHECK_FALSE(g_before_ofd_lock);
    CHECK(r.status == claim_status::gone);
    auto again = f.claim(ref, now);
    REQUIRE(again.status == claim_status::claimed);
    CHECK(again.task->view.arg("v") == std::optional<std::string_view>("2"));
  }
}

// Regression (4a0d3bc "Claim with one fstat after the lock"): only a
// link count of 0 was taken as "gone", so a task renamed out of the queue
// (an operator's mv to another queue) between open and lock was claimed and
// run here, then again where it went.
// Both ways through the check: a file changed just now (its name is
// stat'ed) and one unchanged for longer than the coarse clock's tick (its
// ctime alone tells that it was not moved before the open; the move after
// it stamps a newer ctime).
TEST_CASE("claim reports a task renamed out of the queue while it was being opened", "[queue_dir]") {
  queue_fixture f;
  const std::int64_t now = spoold::now_ns();
  const auto ref = f.put(encode({{"v", "1"}}), now - k_second);
  const bool aged = GENERATE(false, true);
  INFO("file unchanged for 50 ms before the claim: " << aged);
  if (aged) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  const std::string moved = f.tmp() / ref.name;
  const ofd_lock_hook_guard guard;
  g_before_ofd_lock = [&] { CHECK(::rename(f.file(ref).c_str(), moved.c_str()) == 0); };
  auto r = f.claim(ref, now);
  CHECK_FALSE(g_before_ofd_lock);
  CHECK(r.status == claim_status::gone);
  CHECK_FALSE(r.task.has_value());
}

TEST_CASE("reschedule writes the attempt, the error and the due time back into the task", "[queue_dir]") {
  queue_fixture f;
  const std::int64_t now = spoold::now_ns();
  const std::string priority = GENERATE(std::string(""), std::string("4"));
  const auto ref = f.put(encode({{"type", "mail"}, {"spoold.error", "older"}}, "body\0bytes"s), now - k_second,
                         priority);
  const std::string dir = priority.empty() ? f.path() : f.path() + "/" + priority;

  auto r = f.claim(ref, now);
  REQUIRE(r.status == claim_status::claimed);
  const std::int64_t due = now + 5 * k_second + 123'456'789;
  const auto res = f.dir().reschedule(*r.task, 1, "connection refused", due);
  INFO((res.ok() ? "" : res.err().message));
  REQUIRE(res.ok());
  r.task.reset();

  CHECK(unit::mtime_ns_of(f.file(ref)) == due);
  CHECK((unit::lstat_of(f.file(ref)).st_mode & 07777) == 0600);
  CHECK(temp_files_in(dir).empty());
  const std::string bytes = unit::read_file(f.file(ref));
  const auto parsed = spoold::parse_spool_file(bytes);
  REQUIRE(parsed.ok());
  CHECK(parsed.task->arg("type") == std::optional<std::string_view>("mail"));
  CHECK(parsed.task->arg("spoold.attempt") == std::optional<std::string_view>("1"));
  CHECK(parsed.task->arg("spoold.error") == std::optional<std::string_view>("connection refused"));
  CHECK(parsed.task->body == "body\0bytes"s);
  std::size_t errors = 0;
  for (const auto& a : parsed.task->args) errors += a.key == "spoold.error" ? 1 : 0;
  CHECK(errors == 1);

  auto early = f.claim(ref, due - 1);
  CHECK(early.status == claim_status::not_due);
  CHECK(early.due_ns == due);
  auto later = f.claim(ref, due);
  REQUIRE(later.status == claim_status::claimed);
  CHECK(later.task->attempt == 1);
}

TEST_CASE("fail moves the task to failed/ with its bookkeeping and removes the original", "[queue_dir]") {
  queue_fixture f;
  const std::int64_t now = spoold::now_ns();
  const auto ref = f.put(encode({{"type", "mail"}, {"spoold.attempt", "4"}}, "the body"), now - k_second, "1");
  auto r = f.claim(ref, now);
  REQUIRE(r.status == claim_status::claimed);

  const std::int64_t before = spoold::now_ns() / k_second;
  const auto res = f.dir().fail(*r.task, 5, "gave up after 5 tries");
  const std::int64_t after = spoold::now_ns() / k_second;
  INFO((res.ok() ? "" : res.err().message));
  REQUIRE(res.ok());

  CHECK_FALSE(unit::exists(f.file(ref)));
  CHECK(unit::list_dir(f.path() + "/failed") == std::vector<std::string>{ref.name});
  const std::string bytes = unit::read_file(f.failed(ref.name));
  const auto parsed = spoold::parse_spool_file(bytes);
  REQUIRE(parsed.ok());
  CHECK(parsed.task->arg("type") == std::optional<std::string_view>("mail"));
  CHECK(spoold::attempt_of(*parsed.task) == 5);
  CHECK(parsed.task->arg("spoold.error") == std::optional<std::string_view>("gave up after 5 tries"));
  const auto failed_at = parsed.task->arg("spoold.failed_at");
  REQUIRE(failed_at.has_value());
  const std::int64_t at = std::stoll(std::string(*failed_at));
  CHECK(at >= before);
  CHECK(at <= after);
  CHECK(parsed.task->body == "the body");
  CHECK(temp_files_in(f.path() + "/failed").empty());
  CHECK(temp_files_in(f.path() + "/1").empty());
}

TEST_CASE("remove_stale_temp_files removes only old .spoold-tmp- regular files", "[queue_dir]") {
  queue_fixture f;
  REQUIRE(::mkdir((f.path() + "/3").c_str(), 0700) == 0);
  unit::write_file(f.path() + "/.spoold-tmp-uwsgi_spoolfile_on_a", "x");
  unit::write_file(f.path() + "/3/.spoold-tmp-uwsgi_spoolfile_on_b", "x");
  unit::write_file(f.path() + "/failed/.spoold-tmp-uwsgi_spoolfile_on_c", "x");
  unit::write_file(f.path() + "/uwsgi_spoolfile_on_task", "x");
  unit::write_file(f.path() + "/.other-hidden", "x");
  REQUIRE(::mkdir((f.path() + "/.spoold-tmp-dir").c_str(), 0700) == 0);
  unit::write_file(f.tmp() / "outside", "x");
  REQUIRE(::symlink((f.tmp() / "outside").c_str(), (f.path() + "/.spoold-tmp-link").c_str()) == 0);
  // The mtime of a rescheduled task's temp file is its due time; only the
  // ctime (now) says how old it is.
  unit::set_mtime_ns(f.path() + "/.spoold-tmp-uwsgi_spoolfile_on_a", std::int64_t{1'000'000'000} * k_second);

  const std::int64_t now = spoold::now_ns();
  CHECK(f.dir().remove_stale_temp_files(60 * k_second, now) == 0);
  CHECK(unit::exists(f.path() + "/.spoold-tmp-uwsgi_spoolfile_on_a"));

  CHECK(f.dir().remove_stale_temp_files(60 * k_second, now + 61 * k_second) == 3);
  CHECK(unit::list_dir(f.path()) ==
        std::vector<std::string>{".other-hidden", ".spoold-tmp-dir", ".spoold-tmp-link", "3", "failed",
                                 "uwsgi_spoolfile_on_task"});
  CHECK(unit::list_dir(f.path() + "/3").empty());
  CHECK(unit::list_dir(f.path() + "/failed").empty());
  CHECK(unit::exists(f.tmp() / "outside"));
  CHECK(f.dir().remove_stale_temp_files(60 * k_second, now + 61 * k_second) == 0);
}

TEST_CASE("claim: a task file the host's user, root and dir_group do not own goes to failed/ unrun", "[queue_dir]") {
  if (::geteuid() != 0) {
    WARN("skipped: only root can give a task file to another user");
    return;
  }
  queue_fixture f;
  const std::int64_t now = spoold::now_ns();
  const task_ref ref = f.put(encode({{"k", "v"}}), now - k_second);
  REQUIRE(::chown(f.file(ref).c_str(), 65534, 65534) == 0);
  auto r = f.claim(ref, now);
  CHECK(r.status == claim_status::unparsable);
  CHECK_FALSE(r.task.has_value());
  CHECK_THAT(r.reason, Contains("task file owned by uid 65534") && Contains("not run"));
  CHECK(unit::list_dir(f.path() + "/failed") ==
        std::vector<std::string>{ref.name, ref.name + ".error"});
  CHECK_THAT(unit::read_file(f.failed(ref.name + ".error")), Contains("spoold did not run " + f.file(ref)));

  const task_ref own = f.put(encode({{"k", "v"}}), now - k_second, "", "uwsgi_spoolfile_on_test_2_2_2_2_2");
  CHECK(f.claim(own, now).status == claim_status::claimed);
}

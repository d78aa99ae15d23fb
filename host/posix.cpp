#include "posix.hpp"

#include <fcntl.h>
#include <linux/landlock.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <vector>
#include <cstring>
#include <filesystem>

namespace spoold {

namespace {

struct planned_fault {
  syscall_id call = syscall_id::count_;
  int err = 0;
  unsigned nth = 0;
  std::string role;  // "" = any
};

struct fault_state {
  bool loaded = false;
  std::vector<planned_fault> plan;
  std::string role = "producer";
  std::array<unsigned, static_cast<std::size_t>(syscall_id::count_)> calls{};
};

fault_state& faults() {
  static fault_state state;
  return state;
}

int errno_by_name(std::string_view name) {
  static const std::pair<const char*, int> known[] = {{"EIO", EIO},     {"ENOSPC", ENOSPC}, {"EMFILE", EMFILE},
                                                      {"EINTR", EINTR}, {"ENOMEM", ENOMEM}, {"EACCES", EACCES},
                                                      {"EDQUOT", EDQUOT}, {"EROFS", EROFS}, {"ENOSYS", ENOSYS},
                                                      {"EOPNOTSUPP", EOPNOTSUPP}};
  for (const auto& [n, e] : known) {
    if (name == n) return e;
  }
  return 0;
}

// "CALL:ERRNO:N[:ROLE]" entries; a malformed one is reported on stderr and
// skipped: this is a test harness's input, and a typo must not pass silently.
std::vector<planned_fault> parse_plan(std::string_view text) {
  std::vector<planned_fault> out;
  while (!text.empty()) {
    const auto comma = text.find(',');
    const std::string_view item = text.substr(0, comma);
    text = comma == std::string_view::npos ? std::string_view() : text.substr(comma + 1);
    std::vector<std::string_view> parts;
    for (std::string_view rest = item;;) {
      const auto colon = rest.find(':');
      parts.push_back(rest.substr(0, colon));
      if (colon == std::string_view::npos) break;
      rest = rest.substr(colon + 1);
    }
    planned_fault f;
    for (std::size_t i = 0; i < std::size(k_syscall_names); ++i) {
      if (!parts.empty() && parts[0] == k_syscall_names[i]) f.call = static_cast<syscall_id>(i);
    }
    if (parts.size() >= 3) {
      f.err = errno_by_name(parts[1]);
      f.nth = static_cast<unsigned>(std::strtoul(std::string(parts[2]).c_str(), nullptr, 10));
    }
    if (parts.size() >= 4 && parts[3] != "*") f.role = std::string(parts[3]);
    if (f.call == syscall_id::count_ || f.err == 0 || f.nth == 0 || parts.size() > 4) {
      std::fprintf(stderr, "spoold: SPOOLD_FAULT_INJECT: cannot read '%.*s' (CALL:ERRNO:N[:ROLE]): ignored\n",
                   static_cast<int>(item.size()), item.data());
      continue;
    }
    out.push_back(std::move(f));
  }
  return out;
}

// The errno to fail this call with, or 0 to make it. Counts every call.
[[maybe_unused]] int injected(syscall_id call) {
#ifdef SPOOLD_FAULT_INJECTION
  fault_state& s = faults();
  if (!s.loaded) {
    s.loaded = true;
    if (const char* env = std::getenv("SPOOLD_FAULT_INJECT")) s.plan = parse_plan(env);
  }
  const unsigned n = ++s.calls[static_cast<std::size_t>(call)];
  for (const auto& f : s.plan) {
    if (f.call == call && f.nth == n && (f.role.empty() || f.role == s.role)) return f.err;
  }
  return 0;
#else
  (void)call;
  return 0;
#endif
}

// Runs a syscall wrapper's call, failing it first when the plan says so, and
// retrying EINTR (the one place that does).
template <class Call>
auto checked(syscall_id id, Call call) {
  for (;;) {
    decltype(call()) rc;
    if (const int err = injected(id); err != 0) {
      errno = err;
      rc = -1;
    } else {
      rc = call();
    }
    if (rc < 0 && errno == EINTR) continue;
    return rc;
  }
}

}  // namespace

bool fault_injection_built() {
#ifdef SPOOLD_FAULT_INJECTION
  return true;
#else
  return false;
#endif
}

void set_fault_role(std::string_view role) {
  faults().role = std::string(role);
  faults().calls = {};
}

void set_fault_plan(std::string_view plan) {
  faults().loaded = true;
  faults().plan = parse_plan(plan);
  faults().calls = {};
}

unsigned syscall_count(syscall_id id) { return faults().calls[static_cast<std::size_t>(id)]; }

void unique_fd::reset(int fd) {
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

std::string errno_text(int err) {
  const char* name = strerrorname_np(err);
  return std::string(std::strerror(err)) + " (" + (name != nullptr ? name : std::to_string(err)) + ")";
}

error io_error(std::string what, int err) { return make_error(what + ": " + errno_text(err), err); }

static std::int64_t to_ns(const timespec& ts) {
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

static std::int64_t clock_ns(clockid_t id) {
  timespec ts{};
  ::clock_gettime(id, &ts);
  return to_ns(ts);
}

std::int64_t now_ns() { return clock_ns(CLOCK_REALTIME); }
std::int64_t monotonic_ns() { return clock_ns(CLOCK_MONOTONIC); }
std::int64_t coarse_now_ns() { return clock_ns(CLOCK_REALTIME_COARSE); }

std::int64_t mtime_ns(const struct stat& st) { return to_ns(st.st_mtim); }
std::int64_t ctime_ns(const struct stat& st) { return to_ns(st.st_ctim); }

result<unique_fd> open_at(int dirfd, const std::string& name, int flags, mode_t mode) {
  const int fd = checked(syscall_id::open, [&] { return ::openat(dirfd, name.c_str(), flags | O_CLOEXEC, mode); });
  if (fd < 0) return io_error("open " + name, errno);
  return unique_fd(fd);
}

result<struct stat> fstat_fd(int fd, const std::string& what) {
  struct stat st {};
  if (checked(syscall_id::stat, [&] { return ::fstat(fd, &st); }) != 0) return io_error("fstat " + what, errno);
  return st;
}

result<struct stat> lstat_at(int dirfd, const std::string& name) {
  struct stat st {};
  if (checked(syscall_id::stat, [&] { return ::fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW); }) != 0) {
    return io_error("lstat " + name, errno);
  }
  return st;
}

result<void> pread_exact(int fd, void* buf, std::size_t size, off_t offset, const std::string& what) {
  auto* p = static_cast<char*>(buf);
  while (size > 0) {
    const ssize_t n = checked(syscall_id::read, [&] { return ::pread(fd, p, size, offset); });
    if (n < 0) return io_error("read " + what, errno);
    if (n == 0) return make_error("read " + what + ": file ended early", EIO);
    p += n;
    size -= static_cast<std::size_t>(n);
    offset += n;
  }
  return {};
}

result<void> write_all(int fd, const void* buf, std::size_t size, const std::string& what) {
  const auto* p = static_cast<const char*>(buf);
  while (size > 0) {
    const ssize_t n = checked(syscall_id::write, [&] { return ::write(fd, p, size); });
    if (n < 0) return io_error("write " + what, errno);
    p += n;
    size -= static_cast<std::size_t>(n);
  }
  return {};
}

result<void> fsync_fd(int fd, const std::string& what) {
  if (checked(syscall_id::fsync, [&] { return ::fsync(fd); }) != 0) return io_error("fsync " + what, errno);
  return {};
}

result<void> rename_at(int dirfd, const std::string& from, int to_dirfd, const std::string& to) {
  if (checked(syscall_id::rename, [&] { return ::renameat(dirfd, from.c_str(), to_dirfd, to.c_str()); }) != 0) {
    return io_error("rename " + from + " -> " + to, errno);
  }
  return {};
}

result<void> unlink_at(int dirfd, const std::string& name) {
  if (checked(syscall_id::unlink, [&] { return ::unlinkat(dirfd, name.c_str(), 0); }) != 0) {
    return io_error("unlink " + name, errno);
  }
  return {};
}

namespace {
// mkdir() leaves out what the umask masks: a directory we just created gets
// the configured mode exactly (through an fd, so never a symlink's target).
result<void> set_new_dir_mode(int dirfd, const std::string& name, mode_t mode) {
  auto fd = open_at(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
  if (!fd) return make_error("open the new directory: " + fd.err().message, fd.err().code);
  return set_mode(fd->get(), mode, "the new directory " + name);
  return {};
}
}  // namespace

result<void> mkdir_at(int dirfd, const std::string& name, mode_t mode) {
  if (checked(syscall_id::mkdir, [&] { return ::mkdirat(dirfd, name.c_str(), mode); }) != 0) {
    if (errno == EEXIST) return {};
    return io_error("mkdir " + name, errno);
  }
  return set_new_dir_mode(dirfd, name, mode);
}

result<void> set_mode(int fd, mode_t mode, const std::string& what) {
  if (checked(syscall_id::chmod, [&] { return ::fchmod(fd, mode); }) != 0) return io_error("chmod " + what, errno);
  return {};
}

result<void> set_mtime(int fd, std::int64_t when_ns, const std::string& what) {
  timespec times[2];
  times[0].tv_sec = static_cast<time_t>(when_ns / 1'000'000'000);
  times[0].tv_nsec = static_cast<long>(when_ns % 1'000'000'000);
  times[1] = times[0];
  if (checked(syscall_id::utimens, [&] { return ::futimens(fd, times); }) != 0) {
    return io_error("set the time of " + what, errno);
  }
  return {};
}

result<bool> try_lock_file(int fd, const std::string& what) {
  struct flock fl {};
  fl.l_type = F_WRLCK;
  fl.l_whence = SEEK_SET;
  fl.l_start = 0;
  fl.l_len = 0;
  if (checked(syscall_id::lock, [&] { return ::fcntl(fd, F_OFD_SETLK, &fl); }) == 0) return true;
  if (errno == EAGAIN || errno == EACCES) return false;
  return io_error("lock " + what, errno);
}

result<int> landlock_abi_version() {
  const long v = checked(syscall_id::landlock, [] {
    return ::syscall(SYS_landlock_create_ruleset, nullptr, 0, LANDLOCK_CREATE_RULESET_VERSION);
  });
  if (v < 0) return io_error("probe Landlock", errno);
  return static_cast<int>(v);
}

result<pid_t> fork_process(const std::string& what) {
  const pid_t pid = checked(syscall_id::fork, [] { return ::fork(); });
  if (pid < 0) return io_error("fork " + what, errno);
  return pid;
}

result<void> kill_process(pid_t pid, int sig, const std::string& what) {
  if (checked(syscall_id::kill, [&] { return ::kill(pid, sig); }) != 0 && errno != ESRCH) {
    return io_error("kill " + what + " (pid " + std::to_string(pid) + ")", errno);
  }
  return {};
}

result<std::pair<unique_fd, unique_fd>> make_socketpair(int type, const std::string& what) {
  int sv[2];
  if (checked(syscall_id::socketpair, [&] { return ::socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, sv); }) != 0) {
    return io_error("socketpair for " + what, errno);
  }
  return std::make_pair(unique_fd(sv[0]), unique_fd(sv[1]));
}

result<void> send_message(int fd, const void* data, std::size_t size, int flags, const std::string& what) {
  const ssize_t n = checked(syscall_id::send, [&] { return ::send(fd, data, size, flags | MSG_NOSIGNAL); });
  if (n < 0) return io_error("send to " + what, errno);
  return {};
}

result<void> make_dirs(const std::string& path, mode_t mode) {
  std::filesystem::path p(path);
  std::filesystem::path acc;
  for (const auto& part : p) {
    acc /= part;
    if (part.empty() || part == "/") continue;
    if (checked(syscall_id::mkdir, [&] { return ::mkdir(acc.c_str(), mode); }) != 0) {
      if (errno == EEXIST) continue;
      return io_error("mkdir " + acc.string(), errno);
    }
    if (auto set = set_new_dir_mode(AT_FDCWD, acc.string(), mode); !set) return set;
  }
  return {};
}

}  // namespace spoold

// The one home of the raw syscalls of a task's life (claim, read, delete,
// reschedule, fail, the producers' write): each wrapped once, EINTR retried
// in one place, errno turned into a message that says what was being done.
//
// It is also the seam for fault injection. In a build with
// SPOOLD_FAULT_INJECTION (scripts/test turns it on; a plain or release build
// has none of it), the environment variable
//   SPOOLD_FAULT_INJECT="CALL:ERRNO:N[:ROLE][,...]"
// makes the Nth call (counted from 1 in each process, after its role is set)
// of CALL fail with ERRNO before it reaches the kernel, in processes of ROLE
// (master, spooler, producer; * or absent: any). CALL is one of the names of
// syscall_id. An injected EINTR is retried like a real one.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <cstdint>
#include <iterator>
#include <utility>
#include <string>
#include <string_view>

#include "result.hpp"

namespace spoold {

// The calls the seam wraps, by the names SPOOLD_FAULT_INJECT uses.
enum class syscall_id {
  open, stat, read, write, fsync, rename, unlink, mkdir, utimens, lock, chmod,  // a task's file
  fork, kill, socketpair, send,                                                 // its processes
  landlock,                                                                     // the sandbox's probe
  count_
};
inline constexpr const char* k_syscall_names[] = {"open",  "stat",  "read",    "write", "fsync", "rename",
                                                  "unlink", "mkdir", "utimens", "lock", "chmod", "fork",
                                                  "kill",  "socketpair", "send", "landlock"};
static_assert(std::size(k_syscall_names) == static_cast<std::size_t>(syscall_id::count_));

// True when this binary was built with SPOOLD_FAULT_INJECTION.
bool fault_injection_built();
// The process's role for SPOOLD_FAULT_INJECT ("master", "spooler"; the rest
// are "producer"); restarts the call counts. Called after fork.
void set_fault_role(std::string_view role);
// For in-process tests: replaces the plan read from the environment ("" =
// none) and restarts the counts.
void set_fault_plan(std::string_view plan);
// Calls of each syscall_id since the counts restarted.
unsigned syscall_count(syscall_id id);

// An owned file descriptor, closed on destruction.
class unique_fd {
 public:
  unique_fd() = default;
  explicit unique_fd(int fd) : fd_(fd) {}
  unique_fd(unique_fd&& o) noexcept : fd_(o.release()) {}
  unique_fd& operator=(unique_fd&& o) noexcept {
    if (this != &o) reset(o.release());
    return *this;
  }
  unique_fd(const unique_fd&) = delete;
  unique_fd& operator=(const unique_fd&) = delete;
  ~unique_fd() { reset(); }
  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int release() {
    int f = fd_;
    fd_ = -1;
    return f;
  }
  void reset(int fd = -1);

 private:
  int fd_ = -1;
};

// errno as "No such file or directory (ENOENT)".
std::string errno_text(int err);
error io_error(std::string what, int err);

// A wall-clock instant in nanoseconds since the epoch.
std::int64_t now_ns();
// CLOCK_MONOTONIC in nanoseconds.
std::int64_t monotonic_ns();
// The same two in milliseconds (Redis scores and timeouts are in ms).
inline std::int64_t now_ms() { return now_ns() / 1'000'000; }
inline std::int64_t monotonic_ms() { return monotonic_ns() / 1'000'000; }
// CLOCK_REALTIME_COARSE in nanoseconds: the clock local filesystems stamp
// file times with (a finer stamp, where the kernel gives one, is never
// earlier than it).
std::int64_t coarse_now_ns();
std::int64_t mtime_ns(const struct stat& st);
std::int64_t ctime_ns(const struct stat& st);

result<unique_fd> open_at(int dirfd, const std::string& name, int flags, mode_t mode = 0);
result<struct stat> fstat_fd(int fd, const std::string& what);
// lstat relative to a directory fd; never follows a symlink.
result<struct stat> lstat_at(int dirfd, const std::string& name);
// Reads exactly size bytes at offset, or fails naming what.
result<void> pread_exact(int fd, void* buf, std::size_t size, off_t offset, const std::string& what);
result<void> write_all(int fd, const void* buf, std::size_t size, const std::string& what);
result<void> fsync_fd(int fd, const std::string& what);
result<void> rename_at(int dirfd, const std::string& from, int to_dirfd, const std::string& to);
result<void> unlink_at(int dirfd, const std::string& name);
// Creates a directory with exactly mode, whatever the umask; an existing
// directory is not an error and keeps its mode.
result<void> mkdir_at(int dirfd, const std::string& name, mode_t mode);
// Sets the mode of an open file exactly, whatever the umask was.
result<void> set_mode(int fd, mode_t mode, const std::string& what);
// Sets atime and mtime of an open file.
result<void> set_mtime(int fd, std::int64_t when_ns, const std::string& what);

// Takes a whole-file write lock without waiting: an open-file-description
// lock, which conflicts with uWSGI's fcntl(F_SETLK) record lock and is not
// released when another descriptor of the same file is closed.
// Returns false when someone else holds a conflicting lock.
result<bool> try_lock_file(int fd, const std::string& what);

// fork(): the child's pid in the parent, 0 in the child.
result<pid_t> fork_process(const std::string& what);
// kill(); a process already gone (ESRCH) is not an error.
result<void> kill_process(pid_t pid, int sig, const std::string& what);
// A connected pair of close-on-exec AF_UNIX sockets of type (SOCK_SEQPACKET...).
result<std::pair<unique_fd, unique_fd>> make_socketpair(int type, const std::string& what);
// send() of one message, MSG_NOSIGNAL added; EAGAIN comes back as an error
// with that code when flags hold MSG_DONTWAIT and the peer's queue is full.
result<void> send_message(int fd, const void* data, std::size_t size, int flags, const std::string& what);

// The Landlock ABI version the kernel offers (landlock_create_ruleset with
// LANDLOCK_CREATE_RULESET_VERSION); an error (ENOSYS, EOPNOTSUPP) when it
// has none. Injectable as "landlock", to test a host on such a kernel.
result<int> landlock_abi_version();

// Creates dir and its parents with exactly mode (whatever the umask) for the
// ones it creates.
result<void> make_dirs(const std::string& path, mode_t mode);

}  // namespace spoold

#include "posix.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

namespace spoold {

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
  for (;;) {
    int fd = ::openat(dirfd, name.c_str(), flags | O_CLOEXEC, mode);
    if (fd >= 0) return unique_fd(fd);
    if (errno != EINTR) return io_error("open " + name, errno);
  }
}

result<struct stat> fstat_fd(int fd, const std::string& what) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return io_error("fstat " + what, errno);
  return st;
}

result<struct stat> lstat_at(int dirfd, const std::string& name) {
  struct stat st {};
  if (::fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) return io_error("lstat " + name, errno);
  return st;
}

result<void> pread_exact(int fd, void* buf, std::size_t size, off_t offset, const std::string& what) {
  auto* p = static_cast<char*>(buf);
  while (size > 0) {
    ssize_t n = ::pread(fd, p, size, offset);
    if (n < 0) {
      if (errno == EINTR) continue;
      return io_error("read " + what, errno);
    }
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
    ssize_t n = ::write(fd, p, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      return io_error("write " + what, errno);
    }
    p += n;
    size -= static_cast<std::size_t>(n);
  }
  return {};
}

result<void> fsync_fd(int fd, const std::string& what) {
  while (::fsync(fd) != 0) {
    if (errno != EINTR) return io_error("fsync " + what, errno);
  }
  return {};
}

result<void> rename_at(int dirfd, const std::string& from, int to_dirfd, const std::string& to) {
  if (::renameat(dirfd, from.c_str(), to_dirfd, to.c_str()) != 0) {
    return io_error("rename " + from + " -> " + to, errno);
  }
  return {};
}

result<void> unlink_at(int dirfd, const std::string& name) {
  if (::unlinkat(dirfd, name.c_str(), 0) != 0) return io_error("unlink " + name, errno);
  return {};
}

namespace {
// mkdir() leaves out what the umask masks: a directory we just created gets
// the configured mode exactly (through an fd, so never a symlink's target).
result<void> set_new_dir_mode(int dirfd, const std::string& name, mode_t mode) {
  const int fd = ::openat(dirfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return io_error("open the new directory " + name, errno);
  const int rc = ::fchmod(fd, mode);
  const int err = errno;
  ::close(fd);
  if (rc != 0) return io_error("chmod the new directory " + name, err);
  return {};
}
}  // namespace

result<void> mkdir_at(int dirfd, const std::string& name, mode_t mode) {
  if (::mkdirat(dirfd, name.c_str(), mode) != 0) {
    if (errno == EEXIST) return {};
    return io_error("mkdir " + name, errno);
  }
  return set_new_dir_mode(dirfd, name, mode);
}

result<void> set_mtime(int fd, std::int64_t when_ns, const std::string& what) {
  timespec times[2];
  times[0].tv_sec = static_cast<time_t>(when_ns / 1'000'000'000);
  times[0].tv_nsec = static_cast<long>(when_ns % 1'000'000'000);
  times[1] = times[0];
  if (::futimens(fd, times) != 0) return io_error("set the time of " + what, errno);
  return {};
}

result<bool> try_lock_file(int fd, const std::string& what) {
  struct flock fl {};
  fl.l_type = F_WRLCK;
  fl.l_whence = SEEK_SET;
  fl.l_start = 0;
  fl.l_len = 0;
  for (;;) {
    if (::fcntl(fd, F_OFD_SETLK, &fl) == 0) return true;
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EACCES) return false;
    return io_error("lock " + what, errno);
  }
}

result<void> make_dirs(const std::string& path, mode_t mode) {
  std::filesystem::path p(path);
  std::filesystem::path acc;
  for (const auto& part : p) {
    acc /= part;
    if (part.empty() || part == "/") continue;
    if (::mkdir(acc.c_str(), mode) != 0) {
      if (errno == EEXIST) continue;
      return io_error("mkdir " + acc.string(), errno);
    }
    if (auto set = set_new_dir_mode(AT_FDCWD, acc.string(), mode); !set) return set;
  }
  return {};
}

}  // namespace spoold

// Test helpers for the unit tests: a private temporary directory removed at
// the end of the test (kept, and its path printed, when SPOOLD_TEST_KEEP=1),
// and small file utilities that use plain syscalls rather than the code
// under test. The namespace is spoold::unit, not spoold::test: the plugin
// harness has its own spoold::test::temp_dir in the same test binary, and two
// inline classes of one name would be an ODR violation.
#pragma once

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace spoold::unit {

[[noreturn]] inline void fail_errno(const std::string& what) {
  throw std::system_error(errno, std::generic_category(), what);
}

class temp_dir {
 public:
  temp_dir() {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base != nullptr && *base != '\0' ? base : "/tmp") + "/spoold-test-XXXXXX";
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    if (::mkdtemp(buf.data()) == nullptr) fail_errno("mkdtemp " + tmpl);
    path_ = buf.data();
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
  ~temp_dir() {
    const char* keep = std::getenv("SPOOLD_TEST_KEEP");
    if (keep != nullptr && std::string_view(keep) == "1") {
      std::fprintf(stderr, "SPOOLD_TEST_KEEP=1: kept %s\n", path_.c_str());
      return;
    }
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }

  const std::string& path() const { return path_; }
  std::string operator/(std::string_view rel) const { return path_ + "/" + std::string(rel); }

 private:
  std::string path_;
};

// Writes bytes to path (created 0600 or truncated), without the code under test.
inline void write_file(const std::string& path, std::string_view bytes) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) fail_errno("open " + path);
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      ::close(fd);
      errno = err;
      fail_errno("write " + path);
    }
    done += static_cast<std::size_t>(n);
  }
  ::close(fd);
}

inline std::string read_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) fail_errno("open " + path);
  std::string out;
  char buf[65536];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      ::close(fd);
      errno = err;
      fail_errno("read " + path);
    }
    if (n == 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return out;
}

inline bool exists(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

inline struct stat lstat_of(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) fail_errno("lstat " + path);
  return st;
}

inline std::int64_t mtime_ns_of(const std::string& path) {
  const struct stat st = lstat_of(path);
  return static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
}

// Sets atime and mtime of path (not following a link) to when_ns.
inline void set_mtime_ns(const std::string& path, std::int64_t when_ns) {
  timespec times[2];
  times[0].tv_sec = static_cast<time_t>(when_ns / 1'000'000'000);
  times[0].tv_nsec = static_cast<long>(when_ns % 1'000'000'000);
  times[1] = times[0];
  if (::utimensat(AT_FDCWD, path.c_str(), times, AT_SYMLINK_NOFOLLOW) != 0) fail_errno("utimensat " + path);
}

// The names in a directory, without "." and "..", sorted.
inline std::vector<std::string> list_dir(const std::string& path) {
  std::vector<std::string> out;
  DIR* d = ::opendir(path.c_str());
  if (d == nullptr) fail_errno("opendir " + path);
  while (const dirent* e = ::readdir(d)) {
    const std::string_view n(e->d_name);
    if (n != "." && n != "..") out.emplace_back(n);
  }
  ::closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace spoold::unit

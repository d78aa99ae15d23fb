// Appending lines to a shared text file from many spooler processes at once.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>

namespace spoold::plugins {

namespace detail {
inline std::runtime_error file_error(std::string_view what, const std::string& path, int err) {
  return std::runtime_error(std::string(what) + " '" + path + "': " + std::generic_category().message(err));
}

// Permissions of a new file are 0666 minus the process umask, as for a
// shell redirection: the operator decides with UMask= or umask(1).
inline int open_for_append(const std::string& path) {
  int fd;
  do {
    fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0666);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) throw file_error("cannot open for appending", path, errno);
  return fd;
}
}  // namespace detail

// Appends text to the file at path, creating it if needed. The text goes out
// in one write() on an O_APPEND descriptor, so a line written by one process
// is never split by a line of another. Throws std::runtime_error naming the
// file and the errno text.
inline void append_to_file(const std::string& path, std::string_view text) {
  const int fd = detail::open_for_append(path);
  std::size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      ::close(fd);
      throw detail::file_error("cannot append to", path, err);
    }
    // A short write to a regular file only happens when the disk fills up;
    // finishing the line beats leaving half of it, and the next write
    // reports the error.
    done += static_cast<std::size_t>(n);
  }
  // NFS and some FUSE file systems report a failed write only at close().
  if (::close(fd) != 0 && errno != EINTR) throw detail::file_error("cannot append to", path, errno);
}

// Fails now, with the reason, when path cannot be opened for appending, so a
// wrong option stops the spooler at start instead of retrying every task.
inline void check_appendable(const std::string& path) { ::close(detail::open_for_append(path)); }

}  // namespace spoold::plugins

#include "task_reader.hpp"

#include <fcntl.h>

#include <cerrno>

#include "spool_file.hpp"

namespace spoold {

namespace {

std::uint16_t args_size_of(const std::string& header) {
  return static_cast<std::uint16_t>(static_cast<unsigned char>(header[1]) |
                                    (static_cast<unsigned>(static_cast<unsigned char>(header[2])) << 8));
}

}  // namespace

result<unique_fd> open_task_file(int dirfd, const std::string& name, const std::string& path, bool read_write) {
  auto fd = open_at(dirfd, name, (read_write ? O_RDWR : O_RDONLY) | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
  if (!fd) {
    if (fd.err().code == ELOOP) {
      return make_error(path + " is a symlink: task files are never followed through links", ELOOP);
    }
    return make_error("open " + path + ": " + errno_text(fd.err().code), fd.err().code);
  }
  auto st = fstat_fd(fd->get(), path);
  if (!st) return st.err();
  if (!S_ISREG(st->st_mode)) return make_error(path + " is not a regular file: left alone", EINVAL);
  return std::move(*fd);
}

result<bool> held_by_another(int fd, const std::string& path) {
  struct flock probe {};
  probe.l_type = F_WRLCK;
  probe.l_whence = SEEK_SET;
  probe.l_start = 0;
  probe.l_len = 0;
  probe.l_pid = 0;
  if (::fcntl(fd, F_OFD_GETLK, &probe) != 0) return io_error("probe the lock of " + path, errno);
  return probe.l_type != F_UNLCK;
}

result<task_file> read_task_head(int fd, const std::string& path, std::size_t preview_bytes) {
  task_file out;
  auto st = fstat_fd(fd, path);
  if (!st) return st.err();
  out.st = *st;
  const auto size = static_cast<std::uint64_t>(st->st_size > 0 ? st->st_size : 0);
  std::uint64_t head_size = size < k_header_size ? size : k_header_size;
  out.head.resize(static_cast<std::size_t>(head_size));
  if (head_size > 0) {
    if (auto r = pread_exact(fd, out.head.data(), out.head.size(), 0, path); !r) return r.err();
  }
  if (head_size < k_header_size) return out;
  const std::uint64_t announced = k_header_size + args_size_of(out.head);
  // A file shorter than its header says is read whole (at most 64 KiB + 4),
  // so the parser can say what is missing.
  head_size = announced <= size ? announced : size;
  out.head.resize(static_cast<std::size_t>(head_size));
  if (head_size > k_header_size) {
    if (auto r = pread_exact(fd, out.head.data() + k_header_size, out.head.size() - k_header_size,
                             static_cast<off_t>(k_header_size), path);
        !r) {
      return r.err();
    }
  }
  if (announced > size) return out;
  out.body_size = size - announced;
  const std::uint64_t preview = out.body_size < preview_bytes ? out.body_size : preview_bytes;
  out.body_preview.resize(static_cast<std::size_t>(preview));
  if (preview > 0) {
    if (auto r = pread_exact(fd, out.body_preview.data(), out.body_preview.size(), static_cast<off_t>(announced), path);
        !r) {
      return r.err();
    }
  }
  return out;
}

result<std::string> read_whole_file(int fd, const std::string& path, std::uint64_t max_bytes) {
  auto st = fstat_fd(fd, path);
  if (!st) return st.err();
  const auto size = static_cast<std::uint64_t>(st->st_size > 0 ? st->st_size : 0);
  if (size > max_bytes) {
    return make_error(path + " is " + std::to_string(size) + " bytes, over the " + std::to_string(max_bytes) +
                          " this tool reads",
                      EFBIG);
  }
  std::string bytes(static_cast<std::size_t>(size), '\0');
  if (size > 0) {
    if (auto r = pread_exact(fd, bytes.data(), bytes.size(), 0, path); !r) return r.err();
  }
  return bytes;
}

result<std::string> read_note(int dirfd, const std::string& name, const std::string& path, std::size_t max_bytes) {
  auto fd = open_task_file(dirfd, name, path, false);
  if (!fd) return fd.err();
  auto st = fstat_fd(fd->get(), path);
  if (!st) return st.err();
  const auto size = static_cast<std::uint64_t>(st->st_size > 0 ? st->st_size : 0);
  std::string text(static_cast<std::size_t>(size < max_bytes ? size : max_bytes), '\0');
  if (!text.empty()) {
    if (auto r = pread_exact(fd->get(), text.data(), text.size(), 0, path); !r) return r.err();
  }
  return text;
}

}  // namespace spoold

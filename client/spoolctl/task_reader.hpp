// Reading task files as untrusted input (SPEC §9): never through a symlink,
// only regular files, and never more than the header, the args block and a
// bounded preview of the body unless the caller needs the whole file.
#pragma once

#include <sys/stat.h>

#include <cstdint>
#include <string>

#include "posix.hpp"
#include "result.hpp"

namespace spoold {

// Opens dirfd/name without following a symlink and fails unless it is a
// regular file (a FIFO does not block the open). read_write is needed to
// take the OFD write lock. path is only for messages.
result<unique_fd> open_task_file(int dirfd, const std::string& name, const std::string& path, bool read_write);

// The part of a task file that tells what it is.
struct task_file {
  struct stat st {};
  // The 4-byte header and the args block, or the whole file when it is
  // shorter than its header says; parse_spool_file(head) parses it.
  std::string head;
  std::uint64_t body_size = 0;
  std::string body_preview;  // the first bytes of the body
};

// Reads the head of an open task file and up to preview_bytes of its body.
result<task_file> read_task_head(int fd, const std::string& path, std::size_t preview_bytes);

// True when another process holds a lock on the open file that conflicts
// with a whole-file write lock: a spooler (OFD lock) or a uWSGI spooler or
// spoolctl (POSIX lock) is handling it right now. Takes no lock itself
// (F_OFD_GETLK), so it works on a read-only descriptor.
result<bool> held_by_another(int fd, const std::string& path);

// Reads a whole regular file of at most max_bytes (a task being rewritten).
result<std::string> read_whole_file(int fd, const std::string& path, std::uint64_t max_bytes);

// Reads up to max_bytes of a small text file beside a task (a failed/<id>.error
// note), with the same checks as a task file.
result<std::string> read_note(int dirfd, const std::string& name, const std::string& path, std::size_t max_bytes);

}  // namespace spoold

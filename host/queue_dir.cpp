#include "queue_dir.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <algorithm>
#include <vector>

namespace spoold {

namespace {
constexpr const char* k_failed = "failed";
// Task files larger than this are refused rather than read into memory.
constexpr std::int64_t k_max_task_bytes = std::int64_t{1} << 30;

// Filesystems that stamp ctime with this kernel's coarse real-time clock
// (coarse_now_ns()).
bool stamps_ctime_locally(decltype(statfs::f_type) type) {
  switch (type) {
    case TMPFS_MAGIC:
    case EXT4_SUPER_MAGIC:  // also ext2 and ext3
    case XFS_SUPER_MAGIC:
    case BTRFS_SUPER_MAGIC: return true;
    default: return false;
  }
}
}  // namespace

std::optional<task_ref> task_ref::from_relative(std::string_view text) {
  task_ref ref;
  if (auto slash = text.find('/'); slash != std::string_view::npos) {
    ref.priority = std::string(text.substr(0, slash));
    ref.name = std::string(text.substr(slash + 1));
    if (!is_priority_name(ref.priority)) return std::nullopt;
  } else {
    ref.name = std::string(text);
  }
  if (!is_task_name(ref.name)) return std::nullopt;
  return ref;
}

file_identity identity_of(const struct stat& st) {
  return {static_cast<std::uint64_t>(st.st_ino), mtime_ns(st), ctime_ns(st), static_cast<std::int64_t>(st.st_size)};
}

std::int64_t due_time(const struct stat& st, const spool_view& view) {
  std::int64_t due = mtime_ns(st);
  if (auto at = at_of(view)) due = std::max(due, *at);
  return due;
}

result<queue_dir> queue_dir::open(const queue_config& q) {
  if (auto made = make_dirs(q.dir, q.dir_mode); !made) {
    return make_error("queue '" + q.name + "': cannot create its directory: " + made.err().message, made.err().code);
  }
  auto dir = open_at(AT_FDCWD, q.dir, O_RDONLY | O_DIRECTORY);
  if (!dir) return make_error("queue '" + q.name + "': " + dir.err().message, dir.err().code);
  if (::faccessat(dir->get(), ".", R_OK | W_OK | X_OK, AT_EACCESS) != 0) {
    return io_error("queue '" + q.name + "': directory " + q.dir + " must be readable and writable by this user", errno);
  }
  if (auto made = mkdir_at(dir->get(), k_failed, q.dir_mode); !made) {
    return make_error("queue '" + q.name + "' in " + q.dir + ": " + made.err().message, made.err().code);
  }
  struct stat st {};
  if (::fstatat(dir->get(), k_failed, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISDIR(st.st_mode)) {
    return make_error("queue '" + q.name + "': " + q.dir + "/failed must be a directory (it is something else)");
  }
  std::optional<dev_t> local_clock_dev;
  struct statfs fs {};
  if (::fstatfs(dir->get(), &fs) == 0 && stamps_ctime_locally(fs.f_type) && ::fstat(dir->get(), &st) == 0) {
    local_clock_dev = st.st_dev;
  }
  return queue_dir(q, std::move(*dir), local_clock_dev);
}

std::string queue_dir::display(const task_ref& ref) const { return path_ + "/" + ref.relative(); }
std::string queue_dir::dir_path(const task_ref& ref) const {
  return ref.priority.empty() ? path_ : path_ + "/" + ref.priority;
}

result<int> queue_dir::subdir(const std::string& priority) {
  if (priority.empty()) return dir_.get();
  auto it = subdirs_.find(priority);
  if (it != subdirs_.end()) return it->second.get();
  if (!is_priority_name(priority) && priority != k_failed) return make_error("not a priority directory: " + priority);
  auto fd = open_at(dir_.get(), priority, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
  if (!fd) return make_error(fd.err().message + " in " + path_, fd.err().code);
  const int raw = fd->get();
  subdirs_.emplace(priority, std::move(*fd));
  return raw;
}

claim_result queue_dir::claim(const task_ref& ref, std::int64_t now, bool check_due) {
  claim_result out;
  if (!is_task_name(ref.name) || (!ref.priority.empty() && !is_priority_name(ref.priority))) {
    out.status = claim_status::rejected;
    out.reason = "not a task name";
    return out;
  }
  auto dir = subdir(ref.priority);
  if (!dir) {
    out.status = dir.err().code == ENOENT ? claim_status::gone : claim_status::io_error;
    out.reason = dir.err().message;
    return out;
  }
  // Read before the open: a rename or unlink of the file from here on
  // stamps its ctime at or after this.
  const std::int64_t opening_ns = coarse_now_ns();
  // O_NONBLOCK: a FIFO or device named like a task must not block us.
  auto opened = open_at(*dir, ref.name, O_RDWR | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
  if (!opened) {
    const int err = opened.err().code;
    if (err == ENOENT) {
      out.status = claim_status::gone;
    } else if (err == ELOOP) {
      out.status = claim_status::rejected;
      out.reason = "a symbolic link, not a task file: never followed";
    } else {
      out.status = err == ENXIO || err == EISDIR ? claim_status::rejected : claim_status::io_error;
      out.reason = "open " + display(ref) + ": " + errno_text(err);
    }
    return out;
  }
  const int fd = opened->get();
  claimed_task task;
  task.ref = ref;
  task.fd = std::move(*opened);
  // Lock first, then check the file: what we opened may be gone by now.
  // Messages name the path only on failure: building it costs an
  // allocation per task on the hot path.
  auto locked = try_lock_file(fd, ref.name);
  auto st = fstat_fd(fd, ref.name);
  if (!st) {
    out.reason = st.err().message + " in " + dir_path(ref);
    return out;
  }
  task.st = *st;
  out.identity = identity_of(task.st);
  if (!S_ISREG(task.st.st_mode)) {
    out.status = claim_status::rejected;
    out.reason = "not a regular file";
    return out;
  }
  if (!locked) {
    out.reason = locked.err().message + " in " + dir_path(ref);
    return out;
  }
  if (!*locked) {
    out.status = claim_status::busy;
    return out;
  }
  // Deleted, replaced (renamed over) or moved away by whoever held the lock
  // between our open and our lock: the name no longer leads to this file.
  // A link count of 0 shows the first two; a move away only the name shows,
  // unless the file has not changed since before our open (its ctime says
  // so, on a filesystem stamping with our clock): then the stat of the name
  // is skipped, a syscall and a path lookup per task in a backlog.
  const bool unchanged_since_open = local_clock_dev_ && task.st.st_dev == *local_clock_dev_ &&
                                    ctime_ns(task.st) < opening_ns;
  if (task.st.st_nlink == 0) {
    out.status = claim_status::gone;
    return out;
  }
  if (!unchanged_since_open) {
    auto by_name = lstat_at(*dir, ref.name);
    if (!by_name && by_name.err().code != ENOENT) {
      out.reason = by_name.err().message + " in " + dir_path(ref);
      return out;
    }
    if (!by_name || by_name->st_ino != task.st.st_ino || by_name->st_dev != task.st.st_dev) {
      out.status = claim_status::gone;
      return out;
    }
  }
  // Under the lock and for the file the name leads to: a task only the
  // host's user, root or dir_group may have written.
  if (!owners_.trusted(task.st.st_uid)) {
    std::string reason = owners_.refusal(task.st.st_uid) + ": not run";
    auto moved = move_untrusted(ref, reason);
    out.status = moved ? claim_status::unparsable : claim_status::io_error;
    out.reason = moved ? reason : moved.err().message;
    return out;
  }
  if (task.st.st_size > k_max_task_bytes) {
    std::string reason = "the file is " + std::to_string(task.st.st_size) + " bytes, over the 1 GiB limit for a task";
    auto moved = move_unparsable(ref, fd, reason);
    out.status = moved ? claim_status::unparsable : claim_status::io_error;
    out.reason = moved ? reason : moved.err().message;
    return out;
  }
  task.bytes.resize(static_cast<std::size_t>(task.st.st_size));
  if (auto r = pread_exact(fd, task.bytes.data(), task.bytes.size(), 0, ref.name); !r) {
    out.reason = r.err().message + " in " + dir_path(ref);
    return out;
  }
  auto parsed = parse_spool_file(std::string_view(task.bytes.data(), task.bytes.size()));
  if (!parsed.ok()) {
    const std::int64_t age = now - mtime_ns(task.st);
    if (parsed.failure.problem == parse_problem::incomplete && age < k_incomplete_grace_ns && age > -k_incomplete_grace_ns) {
      out.status = claim_status::incomplete;
      out.due_ns = mtime_ns(task.st) + k_incomplete_grace_ns;
      out.reason = parsed.failure.reason;
      return out;
    }
    auto moved = move_unparsable(ref, fd, parsed.failure.reason);
    out.status = moved ? claim_status::unparsable : claim_status::io_error;
    out.reason = moved ? parsed.failure.reason : moved.err().message;
    return out;
  }
  task.view = std::move(*parsed.task);
  task.attempt = attempt_of(task.view);
  const std::int64_t due = due_time(task.st, task.view);
  if (check_due && due > now) {
    out.status = claim_status::not_due;
    out.due_ns = due;
    return out;
  }
  out.status = claim_status::claimed;
  out.task = std::move(task);
  return out;
}

result<void> queue_dir::remove(claimed_task& task) {
  auto dir = subdir(task.ref.priority);
  if (!dir) return dir.err();
  if (auto r = unlink_at(*dir, task.ref.name); !r) {
    return make_error(r.err().message + " in " + path_, r.err().code);
  }
  return {};
}

result<void> queue_dir::reschedule(claimed_task& task, unsigned attempt, const std::string& error_text,
                                   std::int64_t due_ns) {
  auto dir = subdir(task.ref.priority);
  if (!dir) return dir.err();
  auto args = rewrite_bookkeeping(task.view, attempt, error_text, std::nullopt);
  auto bytes = encode_spool_file(args, task.view.body);
  if (!bytes) return make_error("rewrite " + display(task.ref) + ": " + bytes.err().message);
  write_options options;
  options.mtime_ns = due_ns;
  options.mode = config_.file_mode;
  std::string where = task.ref.priority.empty() ? path_ : path_ + "/" + task.ref.priority;
  return write_file_atomically(*dir, where, task.ref.name, *bytes, options);
}

result<void> queue_dir::fail(claimed_task& task, unsigned attempt, const std::string& error_text) {
  auto failed = subdir(k_failed);
  if (!failed) return failed.err();
  auto args = rewrite_bookkeeping(task.view, attempt, error_text, now_ns() / 1'000'000'000);
  auto bytes = encode_spool_file(args, task.view.body);
  if (!bytes) return make_error("rewrite " + display(task.ref) + ": " + bytes.err().message);
  write_options options;
  options.mode = config_.file_mode;
  options.new_name = true;
  if (auto w = write_file_atomically(*failed, path_ + "/failed", task.ref.name, *bytes, options); !w) return w;
  if (auto removed = remove(task); !removed) {
    // In one place only: the task stays pending, as it was, and its try is
    // counted again next time (unless the original is gone already: then
    // failed/ holds the only copy).
    if (removed.err().code != ENOENT) (void)unlink_at(*failed, task.ref.name);
    return removed;
  }
  return {};
}

result<void> queue_dir::move_unparsable(const task_ref& ref, int file_fd, const std::string& reason) {
  (void)file_fd;
  return move_with_note(ref, "spoold could not parse " + display(ref) + ": " + reason + "\n");
}

result<void> queue_dir::move_untrusted(const task_ref& ref, const std::string& reason) {
  return move_with_note(ref, "spoold did not run " + display(ref) + ": " + reason + "\n");
}

result<void> queue_dir::move_with_note(const task_ref& ref, const std::string& text) {
  auto failed = subdir(k_failed);
  if (!failed) return failed.err();
  auto dir = subdir(ref.priority);
  if (!dir) return dir.err();
  write_options options;
  options.mode = config_.file_mode;
  options.new_name = true;
  if (auto w = write_file_atomically(*failed, path_ + "/failed", ref.name + ".error", text, options); !w) return w;
  if (auto r = rename_at(*dir, ref.name, *failed, ref.name); !r) {
    (void)unlink_at(*failed, ref.name + ".error");  // no note without its file
    return make_error(r.err().message + " in " + path_, r.err().code);
  }
  return {};
}

result<void> queue_dir::record_ignored(const claimed_task& task) {
  const std::string line = task.ref.relative() + " " + std::to_string(task.st.st_ino) + " " +
                           std::to_string(mtime_ns(task.st)) + " " + std::to_string(task.st.st_size) + "\n";
  auto fd = open_at(dir_.get(), std::string(k_ignored_list), O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC,
                    config_.file_mode);
  if (!fd) return fd.err();
  // One write of a short line to an O_APPEND file: lines of several
  // spoolers never interleave.
  return write_all(fd->get(), line.data(), line.size(), path_ + "/" + std::string(k_ignored_list));
}

void queue_dir::clear_ignored() { ::unlinkat(dir_.get(), std::string(k_ignored_list).c_str(), 0); }

void queue_dir::remove_temp_of(const task_ref& ref) {
  if (auto dir = subdir(ref.priority)) ::unlinkat(*dir, (std::string(k_temp_prefix) + ref.name).c_str(), 0);
}

std::size_t queue_dir::count_failed() {
  std::size_t n = 0;
  auto fd = subdir(k_failed);
  if (!fd) return 0;
  unique_fd scan(::openat(*fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  DIR* d = scan.valid() ? ::fdopendir(scan.release()) : nullptr;
  if (d == nullptr) return 0;
  while (dirent* e = ::readdir(d)) {
    const std::string_view name(e->d_name);
    if (is_task_name(name) && !name.ends_with(".error")) ++n;
  }
  ::closedir(d);
  return n;
}

bool queue_dir::remove_if_stale_temp(int dirfd, const char* name, std::int64_t max_age_ns, std::int64_t now) {
  const std::string_view n(name);
  if (n.substr(0, k_temp_prefix.size()) != k_temp_prefix) return false;
  struct stat st {};
  if (::fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode)) return false;
  // ctime, not mtime: a rescheduled task's temp file has its due time as mtime.
  if (now - ctime_ns(st) < max_age_ns) return false;
  return ::unlinkat(dirfd, name, 0) == 0;
}

unsigned queue_dir::remove_stale_temp_files(std::int64_t max_age_ns, std::int64_t now, bool failed_only) {
  unsigned removed = 0;
  std::vector<std::string> dirs = {failed_only ? std::string(k_failed) : std::string()};
  if (!failed_only) {
    unique_fd scan(::openat(dir_.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    DIR* d = scan.valid() ? ::fdopendir(scan.release()) : nullptr;
    if (d != nullptr) {
      while (dirent* e = ::readdir(d)) {
        if (is_priority_name(e->d_name) || std::string_view(e->d_name) == k_failed) dirs.emplace_back(e->d_name);
      }
      ::closedir(d);
    }
  }
  for (const auto& name : dirs) {
    auto fd = subdir(name);
    if (!fd) continue;
    unique_fd scan(::openat(*fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    DIR* d = scan.valid() ? ::fdopendir(scan.release()) : nullptr;
    if (d == nullptr) continue;
    while (dirent* e = ::readdir(d)) {
      if (remove_if_stale_temp(*fd, e->d_name, max_age_ns, now)) ++removed;
    }
    ::closedir(d);
  }
  return removed;
}

}  // namespace spoold

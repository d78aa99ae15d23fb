// spoolctl retry and purge: the two commands that change a queue. Both take
// the task's OFD lock first (SPEC §2), so they never act on a task a spooler
// is handling, and both check after locking that the name still points at
// the file they locked.
#include <fcntl.h>
#include <unistd.h>
#include <sys/stat.h>

#include <cerrno>
#include <iostream>
#include <set>
#include <string>

#include "commands.hpp"
#include "dir_entries.hpp"
#include "posix.hpp"
#include "queue_listing.hpp"
#include "spool_file.hpp"
#include "task_reader.hpp"
#include "text_format.hpp"

namespace spoold {

namespace {

// A retried task is rewritten in memory; past this the operator should move it by hand.
constexpr std::uint64_t k_max_retry_bytes = std::uint64_t{1} << 31;

enum class outcome { done, gone, locked, skipped, failed };

struct tally {
  std::size_t done = 0;
  std::size_t locked = 0;
  std::size_t skipped = 0;
  std::size_t failed = 0;

  void add(outcome o) {
    switch (o) {
      case outcome::done: ++done; break;
      case outcome::locked: ++locked; break;
      case outcome::skipped: ++skipped; break;
      case outcome::failed: ++failed; break;
      case outcome::gone: break;
    }
  }
};

std::string plural(std::size_t n, const char* word) {
  return std::to_string(n) + " " + word + (n == 1 ? "" : "s");
}

// True when dirfd/name is still the file open as fd: a host may have renamed
// another file over the name between our open and our lock.
bool still_there(int dirfd, const std::string& name, int fd) {
  auto by_name = lstat_at(dirfd, name);
  if (!by_name) return false;
  auto by_fd = fstat_fd(fd, name);
  return by_fd && by_fd->st_dev == by_name->st_dev && by_fd->st_ino == by_name->st_ino && by_fd->st_nlink > 0;
}

// Opens and locks dirfd/name for a change. Reports why not and says what to count.
result<unique_fd> lock_task(int dirfd, const std::string& name, const std::string& path, outcome& why_not) {
  auto fd = open_task_file(dirfd, name, path, true);
  if (!fd) {
    const int code = fd.err().code;
    why_not = code == ENOENT ? outcome::gone : (code == EINVAL || code == ELOOP) ? outcome::skipped : outcome::failed;
    if (why_not == outcome::skipped) report("skipped " + fd.err().message);
    if (why_not == outcome::failed) report(fd.err().message);
    return fd.err();
  }
  auto locked = try_lock_file(fd->get(), path);
  if (!locked) {
    why_not = outcome::failed;
    report(locked.err().message);
    return locked.err();
  }
  if (!*locked) {
    why_not = outcome::locked;
    report("skipped " + escape_bytes(path) + ": locked by a running spooler or another spoolctl");
    return make_error("locked", EAGAIN);
  }
  if (!still_there(dirfd, name, fd->get())) {
    why_not = outcome::gone;
    return make_error("gone", ENOENT);
  }
  return fd;
}

// The directory a retried task goes back to: its numeric `priority` key's
// subdirectory (created if missing), else the queue itself.
result<unique_fd> open_target_dir(int queue_fd, const queue_target& queue, const std::string& subdir) {
  if (subdir.empty()) return open_queue_subdir(queue_fd, queue.dir, "");
  if (auto made = mkdir_at(queue_fd, subdir, static_cast<mode_t>(queue.dir_mode)); !made) {
    return make_error(made.err().message + " in " + queue.dir, made.err().code);
  }
  return open_queue_subdir(queue_fd, queue.dir, subdir);
}

outcome retry_one(const queue_target& queue, int queue_fd, int failed_fd, const std::string& id, bool has_note) {
  const std::string failed_dir = queue.dir + "/" + std::string(k_failed_dir);
  const std::string path = failed_dir + "/" + id;
  outcome why_not = outcome::failed;
  auto fd = lock_task(failed_fd, id, path, why_not);
  if (!fd) return why_not;
  auto head = read_task_head(fd->get(), path, 0);
  if (!head) {
    report(head.err().message);
    return outcome::failed;
  }
  const parse_result parsed_head = parse_spool_file(head->head);

  if (has_note || !parsed_head.ok()) {
    // An unparsable file goes back byte for byte: the host decides again.
    if (lstat_at(queue_fd, id).ok()) {
      report("skipped " + escape_bytes(path) + ": " + escape_bytes(queue.dir + "/" + id) + " already exists");
      return outcome::skipped;
    }
    if (auto moved = rename_at(failed_fd, id, queue_fd, id); !moved) {
      report(moved.err().message + " (from " + failed_dir + " to " + queue.dir + ")");
      return outcome::failed;
    }
    if (has_note) {
      const std::string note = id + std::string(k_note_suffix);
      if (auto removed = unlink_at(failed_fd, note); !removed && removed.err().code != ENOENT) {
        report("moved " + escape_bytes(id) + " back but could not delete its note: " + removed.err().message +
               " in " + failed_dir);
      }
    }
    if (auto s = fsync_fd(queue_fd, queue.dir); !s) report(s.err().message);
    if (auto s = fsync_fd(failed_fd, failed_dir); !s) report(s.err().message);
    return outcome::done;
  }

  auto bytes = read_whole_file(fd->get(), path, k_max_retry_bytes);
  if (!bytes) {
    report(bytes.err().message + ": move it back by hand");
    return outcome::failed;
  }
  const parse_result parsed = parse_spool_file(*bytes);
  if (!parsed.ok()) {
    report(escape_bytes(path) + " changed while being read: " + parsed.failure.reason);
    return outcome::failed;
  }
  std::vector<owned_arg> args;
  for (const auto& a : parsed.task->args) {
    if (a.key == k_key_attempt || a.key == k_key_error || a.key == k_key_failed_at) continue;
    args.push_back({std::string(a.key), std::string(a.value)});
  }
  auto encoded = encode_spool_file(args, parsed.task->body);
  if (!encoded) {
    report(escape_bytes(path) + ": " + encoded.err().message);
    return outcome::failed;
  }
  std::string subdir;
  if (auto p = parsed.task->arg("priority"); p && is_priority_name(*p)) subdir = std::string(*p);
  auto target_fd = open_target_dir(queue_fd, queue, subdir);
  if (!target_fd) {
    report(target_fd.err().message);
    return outcome::failed;
  }
  const std::string target_dir = subdir.empty() ? queue.dir : queue.dir + "/" + subdir;
  if (lstat_at(target_fd->get(), id).ok()) {
    report("skipped " + escape_bytes(path) + ": " + escape_bytes(target_dir + "/" + id) + " already exists");
    return outcome::skipped;
  }
  write_options options;
  options.mode = queue.file_mode;
  if (auto written = write_file_atomically(target_fd->get(), target_dir, id, *encoded, options); !written) {
    report(written.err().message);
    return outcome::failed;
  }
  // Pending first, then out of failed/: a crash in between leaves a copy in
  // failed/, never a lost task.
  if (auto removed = unlink_at(failed_fd, id); !removed) {
    report("retried " + escape_bytes(id) + " but could not remove it from " + failed_dir + ": " +
           removed.err().message + ": delete it by hand");
    return outcome::failed;
  }
  if (auto s = fsync_fd(failed_fd, failed_dir); !s) report(s.err().message);
  return outcome::done;
}

outcome purge_one(int dirfd, const std::string& dir, const std::string& name) {
  const std::string path = dir + "/" + name;
  auto st = lstat_at(dirfd, name);
  if (!st) return st.err().code == ENOENT ? outcome::gone : outcome::failed;
  if (!S_ISREG(st->st_mode)) {
    report("skipped " + escape_bytes(path) + ": not a regular file, not a task: left alone");
    return outcome::skipped;
  }
  outcome why_not = outcome::failed;
  auto fd = lock_task(dirfd, name, path, why_not);
  if (!fd) return why_not;
  if (auto removed = unlink_at(dirfd, name); !removed) {
    if (removed.err().code == ENOENT) return outcome::gone;
    report(removed.err().message + " in " + dir);
    return outcome::failed;
  }
  return outcome::done;
}

// Deletes the tasks of one directory (and in failed/, their notes).
result<void> purge_dir(int queue_fd, const std::string& queue_dir, const std::string& subdir, tally& counts) {
  auto fd = open_queue_subdir(queue_fd, queue_dir, subdir);
  if (!fd) {
    if (fd.err().code == ENOENT) return {};
    return fd.err();
  }
  const std::string dir = subdir.empty() ? queue_dir : queue_dir + "/" + subdir;
  auto names = list_names(fd->get(), dir);
  if (!names) return names.err();
  const bool failed = subdir == k_failed_dir;
  std::set<std::string> kept;  // tasks left in place, whose notes stay too
  for (const auto& name : *names) {
    if (!is_task_name(name) || (failed && is_note_name(name))) continue;
    const outcome o = purge_one(fd->get(), dir, name);
    counts.add(o);
    if (o != outcome::done && o != outcome::gone) kept.insert(name);
  }
  if (failed) {
    for (const auto& name : *names) {
      if (!is_task_name(name) || !is_note_name(name)) continue;
      if (kept.count(name.substr(0, name.size() - k_note_suffix.size())) != 0) continue;
      if (auto removed = unlink_at(fd->get(), name); !removed && removed.err().code != ENOENT) {
        report(removed.err().message + " in " + dir);
      }
    }
  }
  return {};
}

}  // namespace

int run_retry(const queue_target& queue, const std::string& id) {
  auto queue_fd = open_queue_dir(queue.dir);
  if (!queue_fd) {
    report(queue_fd.err().message);
    return exit_failure;
  }
  const std::string failed_dir = queue.dir + "/" + std::string(k_failed_dir);
  auto failed_fd = open_queue_subdir(queue_fd->get(), queue.dir, std::string(k_failed_dir));
  if (!failed_fd && failed_fd.err().code != ENOENT) {
    report(failed_fd.err().message);
    return exit_failure;
  }

  if (!id.empty()) {
    if (is_note_name(id)) {
      // Built with append: GCC 12 at -O3 reports a false -Wrestrict for a
      // chain of operator+ starting with a literal.
      std::string message = "'";
      message.append(escape_bytes(id));
      message.append("' is the error note of a failed task, not a task: use the id ");
      message.append(escape_bytes(id.substr(0, id.size() - k_note_suffix.size())));
      report(message);
      return exit_usage;
    }
    if (!failed_fd || !lstat_at(failed_fd->get(), id).ok()) {
      report("no failed task " + escape_bytes(id) + " in " + failed_dir + ": see spoolctl ls");
      return exit_failure;
    }
    const bool has_note = lstat_at(failed_fd->get(), id + std::string(k_note_suffix)).ok();
    const outcome o = retry_one(queue, queue_fd->get(), failed_fd->get(), id, has_note);
    if (o == outcome::gone) {
      report("failed task " + escape_bytes(id) + " left " + failed_dir + " while being retried");
      return exit_failure;
    }
    if (o != outcome::done) return exit_failure;
    std::cout << "retried 1 task: " << escape_bytes(id) << " is pending again\n" << std::flush;
    return std::cout ? exit_ok : exit_failure;
  }

  tally counts;
  if (failed_fd) {
    auto names = list_names(failed_fd->get(), failed_dir);
    if (!names) {
      report(names.err().message);
      return exit_failure;
    }
    const std::set<std::string> present(names->begin(), names->end());
    for (const auto& name : *names) {
      if (!is_task_name(name) || is_note_name(name)) continue;
      const bool has_note = present.count(name + std::string(k_note_suffix)) != 0;
      counts.add(retry_one(queue, queue_fd->get(), failed_fd->get(), name, has_note));
    }
  }
  std::cout << "retried " << plural(counts.done, "task") << " from " << failed_dir;
  if (counts.locked > 0) std::cout << "; " << counts.locked << " locked, left in failed/";
  if (counts.skipped > 0) std::cout << "; " << counts.skipped << " skipped";
  if (counts.failed > 0) std::cout << "; " << counts.failed << " could not be moved";
  std::cout << '\n' << std::flush;
  return counts.failed > 0 || !std::cout ? exit_failure : exit_ok;
}

int run_purge(const queue_target& queue, bool everything, bool yes) {
  if (everything && !yes) {
    if (::isatty(STDIN_FILENO) == 0) {
      report("purge --all deletes every task of " + queue.label +
             ": give --yes to confirm (standard input is not a terminal, so spoolctl cannot ask)");
      return exit_usage;
    }
    auto listing = list_queue(queue.dir, now_ns());
    if (!listing) {
      report(listing.err().message);
      return exit_failure;
    }
    std::size_t failed = 0;
    for (const auto& e : listing->entries) failed += e.state == task_state::failed ? 1 : 0;
    std::cerr << "delete every task of " << queue.label << ": " << listing->entries.size() - failed
              << " pending, delayed or ignored and " << failed << " failed? [y/N] " << std::flush;
    std::string answer;
    std::getline(std::cin, answer);
    if (answer != "y" && answer != "Y" && answer != "yes") {
      report("nothing purged: not confirmed");
      return exit_failure;
    }
  }
  auto queue_fd = open_queue_dir(queue.dir);
  if (!queue_fd) {
    if (queue_fd.err().code == ENOENT) {
      std::cout << "nothing to purge: " << queue.dir << " does not exist\n" << std::flush;
      return exit_ok;
    }
    report(queue_fd.err().message);
    return exit_failure;
  }
  bool ok = true;
  tally pending;
  if (everything) {
    auto names = list_names(queue_fd->get(), queue.dir);
    if (!names) {
      report(names.err().message);
      return exit_failure;
    }
    if (auto r = purge_dir(queue_fd->get(), queue.dir, "", pending); !r) {
      report(r.err().message);
      ok = false;
    }
    for (const auto& name : *names) {
      if (!is_priority_name(name)) continue;
      if (auto r = purge_dir(queue_fd->get(), queue.dir, name, pending); !r) {
        report(r.err().message);
        ok = false;
      }
    }
  }
  tally failed;
  if (auto r = purge_dir(queue_fd->get(), queue.dir, std::string(k_failed_dir), failed); !r) {
    report(r.err().message);
    ok = false;
  }
  std::cout << "purged ";
  if (everything) std::cout << plural(pending.done, "pending or delayed task") << " and ";
  std::cout << plural(failed.done, "failed task");
  const std::size_t locked = pending.locked + failed.locked;
  if (locked > 0) std::cout << "; skipped " << locked << " locked by a running spooler";
  const std::size_t skipped = pending.skipped + failed.skipped;
  if (skipped > 0) std::cout << "; skipped " << skipped << " that are not regular files";
  std::cout << '\n' << std::flush;
  if (pending.failed + failed.failed > 0) ok = false;
  return ok && std::cout ? exit_ok : exit_failure;
}

}  // namespace spoold

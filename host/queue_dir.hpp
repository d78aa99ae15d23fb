// A queue's directory on disk (SPEC §3) and the operations on one task
// file: claim it under a lock, then delete it, reschedule it or move it to
// failed/. Task names come from the directory, which anyone with write
// access to it controls, so every name is vetted again here and every file
// is opened without following links.
#pragma once

#include <sys/stat.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "config.hpp"
#include "dir_trust.hpp"
#include "posix.hpp"
#include "spool_file.hpp"

namespace spoold {

// How long a file shorter than its header says may be in the middle of
// being written (uWSGI creates the file, then writes it).
inline constexpr std::int64_t k_incomplete_grace_ns = 10'000'000'000;

// A task's place: "" for the top directory or a priority "N", and its name.
struct task_ref {
  std::string priority;
  std::string name;

  // "N/name" or "name": the form on the wire between master and spooler.
  std::string relative() const { return priority.empty() ? name : priority + "/" + name; }
  // Parses and vets the wire form; nullopt for anything else.
  static std::optional<task_ref> from_relative(std::string_view text);
};

// Identity of a file version: a change of any field means "the file changed".
struct file_identity {
  std::uint64_t ino = 0;
  std::int64_t mtime_ns = 0;
  std::int64_t ctime_ns = 0;
  std::int64_t size = 0;
  bool operator==(const file_identity&) const = default;
};
file_identity identity_of(const struct stat& st);

// A task file held under this process's lock, read and parsed.
struct claimed_task {
  task_ref ref;
  unique_fd fd;  // holds the lock; closing it releases the lock
  struct stat st {};
  // A vector, not a string: moving a short std::string copies its inline
  // buffer and would leave `view` pointing at the old one.
  std::vector<char> bytes;
  spool_view view;  // views into bytes
  unsigned attempt = 0;
};

enum class claim_status {
  claimed,
  busy,        // someone else holds the lock
  gone,        // deleted or replaced since it was named
  not_due,     // its time has not come: due_ns says when
  incomplete,  // shorter than its header says, but young: being written
  unparsable,  // moved to failed/ with the reason (also: a file whose owner may not write tasks)
  rejected,    // not a regular file, or a name that leaves the directory: left alone
  io_error,
};

struct claim_result {
  claim_status status = claim_status::io_error;
  std::optional<claimed_task> task;
  std::int64_t due_ns = 0;
  file_identity identity;
  std::string reason;
};

class queue_dir {
 public:
  // Creates the directory (and failed/) if missing with the queue's mode,
  // and refuses one it cannot read and write, naming it.
  static result<queue_dir> open(const queue_config& q);

  const std::string& path() const { return path_; }
  const queue_config& config() const { return config_; }
  int fd() const { return dir_.get(); }

  // The directory fd of a priority ("" = the top directory), opened once.
  result<int> subdir(const std::string& priority);

  // Takes the task: opens it (no links, no blocking), locks it without
  // waiting, checks it is still the file with that name, reads and parses
  // it, and checks it is due. Only a claimed result holds the lock.
  // check_due = false skips the due check (the master counting a crash).
  claim_result claim(const task_ref& ref, std::int64_t now, bool check_due = true);

  // After Ok: deletes the task while still holding its lock.
  result<void> remove(claimed_task& task);
  // After Retry: rewrites the task with attempt + error, due at due_ns.
  // The original stays intact if the rewrite cannot be written.
  result<void> reschedule(claimed_task& task, unsigned attempt, const std::string& error_text, std::int64_t due_ns);
  // Writes the task into failed/ with attempt, error and failed_at, then
  // deletes the original.
  result<void> fail(claimed_task& task, unsigned attempt, const std::string& error_text);
  // Moves a file that cannot be parsed to failed/ unchanged, with the
  // reason in failed/<name>.error beside it.
  result<void> move_unparsable(const task_ref& ref, int file_fd, const std::string& reason);
  // Moves a task whose owner may not write tasks (task_owners) to failed/
  // unchanged and unrun, with the reason in failed/<name>.error.
  result<void> move_untrusted(const task_ref& ref, const std::string& reason);
  // Appends the task to the ignored list (k_ignored_list).
  result<void> record_ignored(const claimed_task& task);
  // Removes the ignored list: every task in it is offered again.
  void clear_ignored();
  // Removes the temporary file a rewrite of this task left when its spooler
  // died in the middle of it.
  void remove_temp_of(const task_ref& ref);
  // Task files in failed/ (one directory read: for a status line).
  std::size_t count_failed();

  // Removes .spoold-tmp-* files older than max_age_ns left by a crash, in
  // the whole queue or (failed_only) in failed/ alone: the master's scan
  // removes the ones in the queue's directories as it passes them, so that
  // a start with a million tasks waiting does not read the directory first.
  unsigned remove_stale_temp_files(std::int64_t max_age_ns, std::int64_t now, bool failed_only = false);
  // Removes dirfd/name if it is a .spoold-tmp- regular file whose last
  // change (ctime) is older than max_age_ns.
  static bool remove_if_stale_temp(int dirfd, const char* name, std::int64_t max_age_ns, std::int64_t now);

 private:
  queue_dir(queue_config q, unique_fd dir, std::optional<dev_t> local_clock_dev)
      : config_(std::move(q)), path_(config_.dir), dir_(std::move(dir)), local_clock_dev_(local_clock_dev),
        owners_(config_) {}
  std::string display(const task_ref& ref) const;
  // Renames ref into failed/ with note as failed/<name>.error.
  result<void> move_with_note(const task_ref& ref, const std::string& note);
  std::string dir_path(const task_ref& ref) const;

  queue_config config_;
  std::string path_;
  unique_fd dir_;
  std::map<std::string, unique_fd> subdirs_;
  // The queue directory's device when its filesystem stamps ctime from
  // this machine's clock (tmpfs, ext2/3/4, xfs, btrfs): then a task file on
  // it whose ctime is older than our open was not renamed or unlinked since,
  // and claim() can skip the re-check of its name. Not set for network and
  // other filesystems, whose stamps may come from another clock.
  std::optional<dev_t> local_clock_dev_;
  task_owners owners_;
};

// due = max(mtime, `at`): never before either.
std::int64_t due_time(const struct stat& st, const spool_view& view);

}  // namespace spoold

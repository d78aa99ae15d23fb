// spoolctl fsck: what should not be in a queue directory, each finding with
// what --repair does about it, done only with --repair. What is spoold's
// (task files, temporary files, error notes, priority directories, modes)
// is repaired; what is not spoold's (other files, directories with other
// names) is reported and left for the operator, as the host leaves it. A task
// another process holds locked is never touched. Who may write the queue
// (host/dir_trust.hpp) is reported, never changed: that is the operator's
// decision, and the finding says the command.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <iostream>
#include <set>
#include <utility>
#include <sstream>

#include "commands.hpp"
#include "dir_entries.hpp"
#include "dir_trust.hpp"
#include "json_out.hpp"
#include "posix.hpp"
#include "queue_listing.hpp"
#include "spool_file.hpp"
#include "task_reader.hpp"
#include "text_format.hpp"

namespace spoold {

namespace {

// A temporary file this old was left by a writer that died: producers and
// the host rename theirs within a moment.
constexpr std::int64_t k_stale_temp_ns = 5LL * 60 * 1'000'000'000;
constexpr std::int64_t k_unparsable_grace_ns = 10'000'000'000;  // SPEC §2
constexpr std::size_t k_max_head_bytes = 4 + 0xffff;

enum class verdict { found, repaired, left };

const char* verdict_name(verdict v) {
  switch (v) {
    case verdict::found: return "found";
    case verdict::repaired: return "repaired";
    case verdict::left: return "left";
  }
  return "left";
}

struct finding {
  finding(std::string path_, std::string kind_, std::string problem_, std::string action_,
          verdict result_ = verdict::found)
      : path(std::move(path_)), kind(std::move(kind_)), problem(std::move(problem_)), action(std::move(action_)),
        result(result_) {}

  std::string path;
  std::string kind;     // stale_temp, orphan_note, symlink, special_file, not_a_task, bad_priority_dir, loose_mode,
                        // unparsable, untrusted_dir, untrusted_owner
  std::string problem;  // what is wrong
  std::string action;   // what --repair does, or why it does nothing
  verdict result = verdict::found;
  std::string outcome;  // with --repair: what happened
};

std::string octal(unsigned mode) {
  std::ostringstream o;
  o << '0' << std::oct << (mode & 07777);
  return o.str();
}

class checker {
 public:
  checker(const queue_target& queue, bool repair)
      : queue_(queue), repair_(repair), now_(now_ns()), trust_(trust_rules(queue)), owners_(trust_) {}

  std::vector<finding> findings;

  result<void> run() {
    auto queue_fd = open_queue_dir(queue_.dir);
    if (!queue_fd) return queue_fd.err();
    queue_fd_ = queue_fd->get();
    if (auto st = fstat_fd(queue_fd_, queue_.dir); st && ::geteuid() == 0) {
      // Run as root, spoolctl cannot know which user the host runs as: the
      // queue directory's owner stands for it. Whether that owner is the
      // host's user only a run as that user (sudo -u) or spoold shows.
      trust_.host_uid = st->st_uid;
      owners_ = task_owners(trust_);
    }
    check_dir_mode(queue_fd_, queue_.dir);
    auto names = list_names(queue_fd_, queue_.dir);
    if (!names) return names.err();
    scan_tasks(queue_fd_, "", *names);
    for (const auto& name : *names) {
      const std::string path = queue_.dir + "/" + name;
      const bool ours = is_priority_name(name) || name == k_failed_dir;
      if (is_task_name(name) || is_temp(name) || name == k_ignored_list) continue;
      auto st = lstat_at(queue_fd_, name);
      if (!st) continue;  // gone meanwhile
      if (S_ISLNK(st->st_mode)) {
        remove_link(queue_fd_, name, path, ours);
      } else if (S_ISDIR(st->st_mode) && ours) {
        auto fd = open_queue_subdir(queue_fd_, queue_.dir, name);
        if (!fd) {
          report(fd.err().message);
          ok_ = false;
          continue;
        }
        check_dir_mode(fd->get(), path);
        auto sub_names = list_names(fd->get(), path);
        if (!sub_names) {
          report(sub_names.err().message);
          ok_ = false;
          continue;
        }
        scan_tasks(fd->get(), name, *sub_names);
      } else if (S_ISDIR(st->st_mode)) {
        bad_priority_dir(name, path);
      } else if (ours) {
        add({path, "not_a_task", std::string(S_ISREG(st->st_mode) ? "a file" : "a special file") +
                                     " where spoold keeps a directory (" +
                                     (name == k_failed_dir ? "failed tasks" : "priority " + name) + ")",
             "none: not spoold's to delete; move it away by hand, the host makes the directory", verdict::left});
      } else {
        add({path, "not_a_task", std::string(S_ISREG(st->st_mode) ? "a file" : "a special file") +
                                     " that is not a task (its name does not start with " + std::string(k_task_prefix) +
                                     "): the host leaves it alone",
             "none: not spoold's to delete; move it elsewhere by hand", verdict::left});
      }
    }
    // Last: a --repair of the modes above may have closed what it finds.
    for (const auto& problem : check_dir_trust(trust_).problems) {
      add({queue_.dir, "untrusted_dir", problem,
           "none: who may write a queue is the operator's decision; run the fix the finding names", verdict::left});
    }
    return {};
  }

  bool ok() const { return ok_; }

 private:
  static bool is_temp(const std::string& name) { return name.rfind(std::string(k_temp_prefix), 0) == 0; }

  // The queue as host/dir_trust.hpp judges it; the host's user is the
  // user spoolctl runs as (see run() for root).
  static queue_config trust_rules(const queue_target& queue) {
    queue_config q;
    q.name = queue.name;
    q.dir = queue.dir;
    q.dir_mode = queue.dir_mode;
    q.dir_group = queue.dir_group;
    q.dir_gid = queue.dir_gid;
    q.host_uid = ::geteuid();
    return q;
  }

  void add(finding f) { findings.push_back(std::move(f)); }

  // Applies a repair when asked: fix returns an error text, empty on success.
  template <class Fix>
  void repairable(finding f, Fix fix) {
    if (repair_) {
      const std::string failure = fix();
      if (failure.empty()) {
        f.result = verdict::repaired;
      } else {
        f.result = verdict::left;
        f.outcome = failure;
      }
    }
    add(std::move(f));
  }

  void check_dir_mode(int fd, const std::string& path) {
    auto st = fstat_fd(fd, path);
    if (!st) return;
    // With a dir_group, a setgid directory (2770) is how its files get
    // that group: not looser, and kept by a repair.
    const unsigned keep = queue_.dir_gid ? (st->st_mode & S_ISGID) : 0;
    const unsigned mode = st->st_mode & 07777 & ~keep;
    if ((mode & ~queue_.dir_mode) == 0) return;
    repairable({path, "loose_mode",
                "directory mode " + octal(mode) + " is looser than dir_mode " + octal(queue_.dir_mode),
                "chmod " + octal(queue_.dir_mode | keep)},
               [&]() -> std::string {
                 auto m = set_mode(fd, static_cast<mode_t>(queue_.dir_mode | keep), path);
                 return m ? "" : m.err().message;
               });
  }

  void remove_link(int dirfd, const std::string& name, const std::string& path, bool ours) {
    repairable({path, "symlink",
                std::string("a symlink") + (ours ? " where spoold keeps a directory" : "") +
                    ": the host never follows links in a queue",
                "remove the link (its target is not touched)"},
               [&]() -> std::string {
                 auto r = unlink_at(dirfd, name);
                 return r || r.err().code == ENOENT ? "" : r.err().message;
               });
  }

  void bad_priority_dir(const std::string& name, const std::string& path) {
    std::size_t tasks = 0;
    if (auto fd = open_queue_subdir(queue_fd_, queue_.dir, name)) {
      if (auto names = list_names(fd->get(), path)) {
        for (const auto& n : *names) tasks += is_task_name(n) ? 1 : 0;
      }
    }
    add({path, "bad_priority_dir",
         "a directory whose name is not a priority number: the host never looks inside" +
             (tasks > 0 ? " (" + std::to_string(tasks) + " task file" + (tasks == 1 ? "" : "s") + " in it never run)"
                        : std::string()),
         "none: rename it to a number (its priority) or move its tasks into " + queue_.dir + " by hand",
         verdict::left});
  }

  // The entries of one task directory: "" (the queue), a priority, failed.
  void scan_tasks(int dirfd, const std::string& subdir, const std::vector<std::string>& names) {
    const std::string dir = subdir.empty() ? queue_.dir : queue_.dir + "/" + subdir;
    const bool failed = subdir == k_failed_dir;
    const std::set<std::string> present(names.begin(), names.end());
    for (const auto& name : names) {
      const std::string path = dir + "/" + name;
      if (subdir.empty() && !is_task_name(name) && !is_temp(name)) continue;  // run() looks at those
      auto st = lstat_at(dirfd, name);
      if (!st) continue;
      if (S_ISLNK(st->st_mode)) {
        remove_link(dirfd, name, path, is_task_name(name));
        continue;
      }
      if (is_temp(name)) {
        if (!S_ISREG(st->st_mode)) {
          special(dirfd, name, path, *st);
        } else if (now_ - ctime_ns(*st) >= k_stale_temp_ns) {
          repairable({path, "stale_temp",
                      "a temporary file unchanged for " + format_span(now_ - ctime_ns(*st)) +
                          ": left by a writer that died before renaming it",
                      "delete it"},
                     [&]() -> std::string {
                       auto r = unlink_at(dirfd, name);
                       return r || r.err().code == ENOENT ? "" : r.err().message;
                     });
        }
        continue;
      }
      if (!is_task_name(name)) {
        if (S_ISDIR(st->st_mode)) {
          add({path, "not_a_task", "a directory inside " + dir + ": the host never looks inside",
               "none: not spoold's; move it away by hand", verdict::left});
        } else {
          add({path, "not_a_task", "not a task (its name does not start with " + std::string(k_task_prefix) + ")",
               "none: not spoold's to delete; move it elsewhere by hand", verdict::left});
        }
        continue;
      }
      if (!S_ISREG(st->st_mode)) {
        special(dirfd, name, path, *st);
        continue;
      }
      if (failed && is_note_name(name)) {
        const std::string task = name.substr(0, name.size() - k_note_suffix.size());
        if (present.count(task) == 0) {
          repairable({path, "orphan_note", "the error note of " + task + ", which is no longer in failed/",
                      "delete the note"},
                     [&]() -> std::string {
                       auto r = unlink_at(dirfd, name);
                       return r || r.err().code == ENOENT ? "" : r.err().message;
                     });
          continue;
        }
      }
      check_task(dirfd, subdir, name, path, *st, failed);
    }
  }

  void special(int dirfd, const std::string& name, const std::string& path, const struct stat& st) {
    if (S_ISDIR(st.st_mode)) {
      add({path, "special_file", "a directory with a task's name: the host skips it",
           "none: a directory may hold anything; look inside and remove it by hand", verdict::left});
      return;
    }
    repairable({path, "special_file", "a FIFO, socket or device with a spoold name: not a task, the host skips it",
                "remove it"},
               [&]() -> std::string {
                 auto r = unlink_at(dirfd, name);
                 return r || r.err().code == ENOENT ? "" : r.err().message;
               });
  }

  // A regular task file: a mode looser than file_mode, and (outside failed/)
  // a file that cannot be parsed, which the host would move to failed/.
  void check_task(int dirfd, const std::string& subdir, const std::string& name, const std::string& path,
                  const struct stat& st, bool failed) {
    const unsigned mode = st.st_mode & 07777;
    if ((mode & ~queue_.file_mode) != 0) {
      const std::string problem = "mode " + octal(mode) + " is looser than file_mode " + octal(queue_.file_mode);
      repairable({path, "loose_mode", problem, "chmod " + octal(queue_.file_mode) + " under the task's lock"},
                 [&]() -> std::string {
                   std::string why;
                   auto fd = lock_for_repair(dirfd, name, path, why);
                   if (!fd) return why;
                   auto m = set_mode(fd->get(), static_cast<mode_t>(queue_.file_mode), path);
                   return m ? "" : m.err().message;
                 });
    }
    if (failed) return;
    if (!owners_.trusted(st.st_uid)) {
      const std::string reason = owners_.refusal(st.st_uid);
      repairable({path, "untrusted_owner", reason + ": the host moves it to failed/ unrun",
                  "move it to failed/ with the reason in failed/" + name + ".error, as the host does"},
                 [&]() -> std::string {
                   return move_to_failed(dirfd, name, path,
                                         "spoolctl fsck moved " + (subdir.empty() ? name : subdir + "/" + name) +
                                             " here: " + reason + ": not run\n");
                 });
      return;
    }
    auto fd = open_task_file(dirfd, name, path, false);
    if (!fd) return;
    auto file = read_task_head(fd->get(), path, 0);
    if (!file || file->head.size() > k_max_head_bytes) return;
    const parse_result parsed = parse_spool_file(file->head);
    if (parsed.ok()) return;
    if (parsed.failure.problem == parse_problem::incomplete && now_ - mtime_ns(file->st) < k_unparsable_grace_ns) {
      return;  // being written
    }
    const std::string reason = parsed.failure.reason;
    repairable({path, "unparsable", "not in the spool format: " + reason,
                "move it to failed/ with the reason in failed/" + name + ".error, as the host does"},
               [&]() -> std::string {
                 return move_to_failed(dirfd, name, path,
                                       "spoolctl fsck found " + (subdir.empty() ? name : subdir + "/" + name) +
                                           " could not be parsed: " + reason + "\n");
               });
  }

  // Opens and locks a task for a change; why says why not (locked, gone).
  result<unique_fd> lock_for_repair(int dirfd, const std::string& name, const std::string& path, std::string& why) {
    auto fd = open_task_file(dirfd, name, path, true);
    if (!fd) {
      why = fd.err().message;
      return fd.err();
    }
    auto locked = try_lock_file(fd->get(), path);
    if (!locked) {
      why = locked.err().message;
      return locked.err();
    }
    if (!*locked) {
      why = "locked by a running spooler or another process: not touched";
      return make_error(why, EAGAIN);
    }
    auto by_name = lstat_at(dirfd, name);
    auto by_fd = fstat_fd(fd->get(), path);
    if (!by_name || !by_fd || by_name->st_ino != by_fd->st_ino || by_name->st_dev != by_fd->st_dev) {
      why = "replaced or removed while being repaired: not touched";
      return make_error(why, ENOENT);
    }
    return fd;
  }

  // Moves a task to failed/ unchanged under its lock, with text as its note.
  std::string move_to_failed(int dirfd, const std::string& name, const std::string& path, const std::string& text) {
    std::string why;
    auto fd = lock_for_repair(dirfd, name, path, why);
    if (!fd) return why;
    if (auto made = mkdir_at(queue_fd_, std::string(k_failed_dir), static_cast<mode_t>(queue_.dir_mode)); !made) {
      return made.err().message + " in " + queue_.dir;
    }
    auto failed_fd = open_queue_subdir(queue_fd_, queue_.dir, std::string(k_failed_dir));
    if (!failed_fd) return failed_fd.err().message;
    const std::string failed_dir = queue_.dir + "/" + std::string(k_failed_dir);
    if (lstat_at(failed_fd->get(), name).ok()) return failed_dir + "/" + name + " already exists: not moved";
    write_options options;
    options.mode = queue_.file_mode;
    options.new_name = true;
    if (auto w = write_file_atomically(failed_fd->get(), failed_dir, name + std::string(k_note_suffix), text, options);
        !w) {
      return w.err().message;
    }
    if (auto r = rename_at(dirfd, name, failed_fd->get(), name); !r) {
      (void)unlink_at(failed_fd->get(), name + std::string(k_note_suffix));
      return r.err().message;
    }
    if (auto s = fsync_fd(failed_fd->get(), failed_dir); !s) report(s.err().message);
    return "";
  }

  const queue_target& queue_;
  bool repair_;
  std::int64_t now_;
  int queue_fd_ = -1;
  bool ok_ = true;
  queue_config trust_;
  task_owners owners_;
};

}  // namespace

int run_fsck(const queue_target& queue, bool repair, bool as_json) {
  struct stat st {};
  if (::stat(queue.dir.c_str(), &st) != 0 && errno == ENOENT) {
    report("the directory of " + queue.label + " does not exist yet: nothing to check");
    if (as_json) {
      json doc{{"queue", queue.name.empty() ? json(nullptr) : json(queue.name)}, {"dir", json_text(queue.dir)},
               {"repair", repair}, {"clean", true}, {"findings", json::array()}, {"found", 0}, {"repaired", 0},
               {"left", 0}};
      return print_json(doc);
    }
    return exit_ok;
  }
  checker c(queue, repair);
  if (auto r = c.run(); !r) {
    report(r.err().message);
    return exit_failure;
  }
  std::size_t repaired = 0;
  std::size_t left = 0;
  for (const auto& f : c.findings) {
    if (f.result == verdict::repaired) ++repaired;
    if (f.result != verdict::repaired) ++left;
  }
  const bool clean = left == 0 && c.ok();
  if (as_json) {
    json doc;
    doc["queue"] = queue.name.empty() ? json(nullptr) : json(queue.name);
    doc["dir"] = json_text(queue.dir);
    doc["repair"] = repair;
    doc["clean"] = clean;
    doc["findings"] = json::array();
    for (const auto& f : c.findings) {
      json j;
      j["path"] = json_text(f.path);
      j["kind"] = f.kind;
      j["problem"] = json_text(f.problem);
      j["action"] = json_text(f.action);
      j["result"] = verdict_name(f.result);
      j["error"] = f.outcome.empty() ? json(nullptr) : json(json_text(f.outcome));
      doc["findings"].push_back(j);
    }
    doc["found"] = c.findings.size();
    doc["repaired"] = repaired;
    doc["left"] = left;
    const int printed = print_json(doc);
    return printed != exit_ok ? printed : clean ? exit_ok : exit_failure;
  }
  std::ostringstream out;
  for (const auto& f : c.findings) {
    out << escape_bytes(f.path) << ": " << escape_bytes(f.problem) << '\n';
    switch (f.result) {
      case verdict::found: out << "  --repair would: " << f.action << '\n'; break;
      case verdict::repaired: out << "  repaired: " << f.action << '\n'; break;
      case verdict::left:
        out << "  left: " << (f.outcome.empty() ? f.action : escape_bytes(f.outcome)) << '\n';
        break;
    }
  }
  if (c.findings.empty()) {
    out << queue.dir << ": clean\n";
  } else if (repair) {
    out << c.findings.size() << " found, " << repaired << " repaired, " << left << " left\n";
  } else {
    out << c.findings.size() << " found; nothing was changed (run with --repair to act)\n";
  }
  std::cout << out.str() << std::flush;
  if (!std::cout) return exit_failure;
  return clean ? exit_ok : exit_failure;
}

}  // namespace spoold

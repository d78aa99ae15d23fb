// The master's view of one queue: which task names are waiting, which are
// in a spooler's hands, which wait for a time, and which no plugin took.
//
// It is fed by inotify events and by an incremental scan of each directory
// (the top one and every numeric priority directory), read a batch at a
// time and only when there is nothing else to hand out, so the cost per task
// does not grow with the backlog and a million waiting tasks are never all
// in memory. One index per queue means one scan per queue, however many
// spooler processes it has (docs/design.md says why).
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <queue>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "protocol.hpp"
#include "queue_dir.hpp"

struct inotify_event;

namespace spoold {

// Temporary files (.spoold-tmp-*) unchanged for this long were left by a
// crash: a producer or a rewrite takes milliseconds.
inline constexpr std::int64_t k_stale_temp_age_ns = 5 * 60 * 1'000'000'000LL;

class queue_index {
 public:
  queue_index(queue_dir& dir, int inotify_fd);
  ~queue_index();
  queue_index(const queue_index&) = delete;
  queue_index& operator=(const queue_index&) = delete;

  // Watches the top directory and starts scanning it.
  result<void> start();
  // True when wd is one of this queue's watches.
  bool owns(int wd) const { return sources_by_wd_.count(wd) != 0; }
  void on_event(const inotify_event& e);
  // Starts a new pass over every directory (missed events, overflow).
  void rescan();

  // The next task to hand out (with the try it owes, if any; seq unset),
  // marked as in a spooler's hands; nullopt when nothing is due.
  std::optional<assignment> next_due(std::int64_t now);
  // A spooler's report on a task it was handed.
  void on_report(const std::string& task, const report& r, std::int64_t now);
  // A task handed out but never started (its spooler stopped first).
  void on_returned(const std::string& task);
  // A task whose spooler died inside it: offered again at once, and the
  // spooler that takes it counts the try (why) before anything else. The
  // debt stays until a spooler has counted it or the task is gone.
  void owe_try(const std::string& task, std::string why);
  // Forgets which tasks no plugin took, so that they are offered again
  // (a reload: the new plugins may take them).
  void forget_ignored();

  // What the index knows of the queue right now (a status line).
  struct counts {
    std::size_t pending = 0;    // due, waiting for a spooler
    std::size_t delayed = 0;    // waiting for their time (at, backoff, a busy file)
    std::size_t ignored = 0;    // no plugin took them
    std::size_t in_flight = 0;  // named to a spooler
    bool complete = true;       // false while a scan has names still unread
  };
  counts count() const;
  // The earliest time a waiting task becomes due; INT64_MAX if none.
  std::int64_t next_wakeup();

  std::size_t known_count() const { return known_.size(); }

 private:
  enum class state : std::uint8_t { pending, in_flight, waiting, ignored };
  struct entry {
    state st = state::pending;
    std::int64_t due_ns = 0;
    file_identity identity;
    // Waiting only because the file was still being written: its writer's
    // close event offers it again before the grace period ends.
    bool incomplete = false;
    std::string owed_try;  // see owe_try()
  };
  struct source;

  source* add_source(const std::string& priority);
  // Reads the whole top directory for priority subdirectories only, so that
  // none of the top directory's tasks runs before a priority task.
  void discover_priorities(source& top);
  void remove_source(source& s);
  // Reads the next batch of names from s's scan into s.pending.
  void read_batch(source& s);
  // A name seen by a scan or an event: queued unless already known.
  void offer(source& s, const std::string& name, bool from_event);
  void wait_until(const std::string& task, std::int64_t due, bool incomplete = false);

  queue_dir& dir_;
  int inotify_fd_;
  // By (number, directory name): 7 and 007 are two directories; the top
  // directory last.
  std::map<std::pair<std::int64_t, std::string>, std::unique_ptr<source>> sources_;
  std::unordered_map<int, source*> sources_by_wd_;
  std::unordered_map<std::string, entry> known_;
  std::priority_queue<std::pair<std::int64_t, std::string>, std::vector<std::pair<std::int64_t, std::string>>,
                      std::greater<>>
      waiting_;
  // Set when a priority directory was found, so next_due() starts again
  // from the lowest priority.
  bool sources_changed_ = false;
};

}  // namespace spoold

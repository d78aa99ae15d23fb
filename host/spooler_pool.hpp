// The spooler processes of every queue: fork, the ready handshake after the
// plugins' init(), reports, exits (with the task a dead spooler was inside),
// throttled respawn, and the timeouts of init() and of a task.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <unordered_map>
#include <vector>

#include "config.hpp"
#include "posix.hpp"
#include "protocol.hpp"
#include "queue_runtime.hpp"
#include "spooler_board.hpp"

namespace spoold {

struct spooler_proc {
  pid_t pid = 0;
  unique_fd sock;
  spooler_slot* slot = nullptr;
  queue_runtime* queue = nullptr;
  std::deque<assignment> in_hand;
  std::int64_t started = 0;  // monotonic
  bool ready = false;        // its plugins' init() returned: it may be named tasks
  std::uint64_t reports = 0;
  bool retiring = false;
  bool timed_out = false;       // killed at its task's timeout
  bool init_timed_out = false;  // killed at init_timeout
  bool killed_for_shutdown = false;
  std::uint64_t stalled_seq = 0;  // a long task whose waiting names were taken back
  // Inside the long task of take_back_from_stalled(): gets no names.
  bool stalled() const { return stalled_seq != 0 && slot->current_seq.load() == stalled_seq; }
};

class spooler_pool {
 public:
  explicit spooler_pool(int epoll_fd) : epoll_fd_(epoll_fd), board_(map_spooler_board()) {}
  ~spooler_pool();
  spooler_pool(const spooler_pool&) = delete;
  spooler_pool& operator=(const spooler_pool&) = delete;

  // Starts the missing spoolers of each live queue whose respawn pause is over.
  void spawn_missing(std::vector<std::unique_ptr<queue_runtime>>& queues, const host_config& host);
  // Asks a spooler to finish the task in hand and exit: no more tasks.
  void retire(spooler_proc& p);
  void retire_all();
  // After a reload: the spoolers of Redis queues started from now on offer
  // the entries no plugin took again (the board's reload count).
  void offer_ignored_again() {
    if (board_ != nullptr) board_->reloads.fetch_add(1);
  }
  // SIGKILLs every spooler; their tasks stay pending with no try counted.
  void kill_all_for_shutdown();

  // Reads the reports waiting on a spooler's socket.
  void read_reports(spooler_proc& p);
  // A reaped child: false when it is not one of ours. A spooler that died
  // inside a task leaves the try it owes with the queue's index; a death
  // that is its own fault pauses its queue's respawns, doubling.
  bool on_exit(pid_t pid, int status, bool shutting_down);

  // Kills spoolers past init_timeout or their task's timeout.
  void enforce_timeouts();
  // The earliest monotonic time enforce_timeouts() or a stall needs a look.
  std::int64_t next_deadline(std::int64_t stall_ns) const;

  spooler_proc* find_by_fd(int fd);
  bool empty() const { return procs_.empty(); }
  std::size_t size() const { return procs_.size(); }
  const std::map<pid_t, std::unique_ptr<spooler_proc>>& procs() const { return procs_; }
  bool uses(const queue_runtime* q) const;
  // The host's shared board (nullptr when it could not be mapped).
  spooler_board* board() const { return board_; }
  // Spoolers of q, alive and ready.
  std::pair<std::size_t, std::size_t> count(const queue_runtime* q) const;

 private:
  bool spawn(queue_runtime& q, const host_config& host);
  void on_report(spooler_proc& p, const report& r, std::int64_t now);
  void account_exit(spooler_proc& p, int status, bool shutting_down);

  int epoll_fd_;
  spooler_board* board_;  // exit notes and outages of Redis queues' spoolers; may be nullptr
  std::map<pid_t, std::unique_ptr<spooler_proc>> procs_;
  std::unordered_map<int, spooler_proc*> by_fd_;
};

}  // namespace spoold

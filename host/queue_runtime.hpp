// What the master keeps of one queue while it runs: its config, directory,
// index, and the state of its spoolers' respawns.
#pragma once

#include <cstdint>
#include <memory>

#include "config.hpp"
#include "queue_dir.hpp"
#include "queue_index.hpp"

namespace spoold {

struct queue_runtime {
  queue_config cfg;
  // Both null for a Redis queue, whose spoolers take their own tasks.
  std::unique_ptr<queue_dir> dir;
  std::unique_ptr<queue_index> index;
  bool retired = false;           // removed by a reload: no new spoolers, no new tasks
  unsigned deaths_in_a_row = 0;   // spooler deaths since a plugin last returned a status
  std::uint64_t restarts = 0;     // spoolers started to replace one that died
  double avg_task_ns = 1e9;       // moving average of time in the plugin chain; starts "slow"
  std::int64_t respawn_at = 0;    // monotonic; no new spooler before
};

// Opens the queue's directory (creating it), empties its ignored list (a
// start offers every task again), and starts its index on inotify_fd.
result<std::unique_ptr<queue_runtime>> open_queue(const queue_config& q, int inotify_fd);

}  // namespace spoold

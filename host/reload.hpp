// SIGHUP: the file is re-read at once (a bad file changes nothing), its
// plugin chains are started in a check child while the master goes on
// serving tasks, and only a file whose check passed replaces the running
// configuration.
#pragma once

#include <memory>
#include <vector>

#include "config.hpp"
#include "plugin_check.hpp"
#include "queue_runtime.hpp"
#include "spooler_pool.hpp"

namespace spoold {

// A reload whose plugin check is running.
struct pending_reload {
  config next;
  plugin_check check;
  bool check_output_ended = false;
  bool again = false;  // another SIGHUP came meanwhile: read the file again after this one
};

// Reads path and starts the check of its plugins; nullptr (after logging
// every problem) when the file is refused as it is.
std::unique_ptr<pending_reload> begin_reload(const std::string& path);

// Puts a checked config in force: a queue whose directory stays takes the
// new settings, a new one is opened, a removed one retires; every spooler
// is replaced (each was started from the old file) and the tasks no plugin
// took are offered again.
void apply_reload(config& current, config next, std::vector<std::unique_ptr<queue_runtime>>& queues,
                  spooler_pool& pool, int inotify_fd);

}  // namespace spoold

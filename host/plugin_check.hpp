// Loads and starts every queue's plugin chain (create() and init() with the
// queue's real options) in short-lived child processes, so that a plugin that
// crashes, hangs or refuses its options cannot take the caller down, and
// --check catches what a spooler would trip on at start (SPEC §5). Used by
// --check and before a reload (load and init: a refused reload keeps the
// running config), and at start (load only: a database that is down at boot
// must not keep the host from starting; its spoolers' init() failures are
// logged and throttled). The master starts it and goes on serving tasks
// until the check ends.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "config.hpp"
#include "posix.hpp"
#include "result.hpp"

namespace spoold {

enum class check_depth { load, load_and_init };

class plugin_check {
 public:
  // Forks the checking process for every queue of c whose plugin files exist
  // (a missing file is the config's problem, reported by load_config).
  static result<plugin_check> start(const config& c, check_depth depth);

  // Readable while the check writes; read_output() at each wake-up.
  int fd() const { return out_.get(); }
  pid_t pid() const { return pid_; }
  // CLOCK_MONOTONIC past which the check is killed as hung.
  std::int64_t deadline() const { return deadline_; }
  // Reads what is there without blocking; true once the output has ended.
  bool read_output();
  // Kills the check (deadline passed, or the master stops).
  void kill_it();
  // After the child was reaped: one message per problem, empty when every
  // queue's chain starts.
  std::vector<std::string> problems(int wait_status) const;

 private:
  pid_t pid_ = -1;
  unique_fd out_;
  std::int64_t deadline_ = 0;
  std::string output_;
  bool killed_ = false;
};

// Runs the check and waits for it: --check and start-up.
std::vector<std::string> check_plugins_in_child(const config& c, check_depth depth);

}  // namespace spoold

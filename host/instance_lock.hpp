// One host per config file (SPEC §8): two hosts on the same file would both
// consume its queues under two masters that know nothing of each other.
// Hosts with different configs may share a directory: the task locks make
// that safe.
#pragma once

#include <string>

#include "posix.hpp"
#include "result.hpp"

namespace spoold {

// Held for the host's lifetime: a listening abstract Unix socket named
// after the config file's device and inode (so a symlink or another path to
// the same file is the same host). The kernel frees it when the process
// dies, so a crashed host leaves nothing stale behind; a second host learns
// the first one's pid from the socket's peer credentials.
class instance_lock {
 public:
  // Fails with a message naming the running host's pid.
  static result<instance_lock> acquire(const std::string& config_path);
  // Readable when a second host knocked: accept_knock() drops it.
  int fd() const { return socket_.get(); }
  void accept_knock();

 private:
  unique_fd socket_;
};

}  // namespace spoold

// The spoolctl commands (SPEC §8), each given a resolved queue and its
// parsed options, each returning the process exit status.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "spool_file.hpp"

namespace spoold {

// Exit status everywhere: 0 success, 1 runtime failure, 2 usage or config error.
enum exit_status : int { exit_ok = 0, exit_failure = 1, exit_usage = 2 };

// The queue a command acts on, from -c FILE QUEUE or --dir DIR.
struct queue_target {
  std::string label;  // "queue 'mail' (/srv/spool/mail)" or the directory, for messages
  std::string name;   // the queue's name in the config; empty with --dir
  std::string dir;
  unsigned file_mode = 0600;
  unsigned dir_mode = 0700;
  std::string dir_group;         // the group that may write tasks; empty = none
  std::optional<gid_t> dir_gid;  // dir_group's number
};

struct enqueue_options {
  std::vector<owned_arg> args;
  std::optional<std::string> body;
  std::optional<std::string> body_file;  // "-" is standard input
  std::optional<std::int64_t> at_ns;
  std::optional<std::int64_t> delay_ms;
  std::optional<unsigned> priority;
  bool sync = true;
  bool create_dir = true;  // false: refuse a queue directory that does not exist
};

int run_enqueue(const queue_target& queue, const enqueue_options& options);
// json: one JSON document on stdout instead of the text (README, "--json").
int run_ls(const queue_target& queue, bool json);
int run_show(const queue_target& queue, const std::string& id, bool json);
// id empty means every failed task (--all).
int run_retry(const queue_target& queue, const std::string& id);
// everything (--all) asks on a terminal unless yes, and refuses without one.
int run_purge(const queue_target& queue, bool everything, bool yes);
// Counts of each queue, read from its directory (works with the host stopped).
int run_stats(const std::vector<queue_target>& queues, bool json);
// The history of one task's tries and when it is due next.
int run_why(const queue_target& queue, const std::string& id, bool json);
// Finds what should not be in the queue directory; repairs it only when asked.
// Exit 0 when nothing is left, 1 when something is.
int run_fsck(const queue_target& queue, bool repair, bool json);

// The same commands on a Redis queue (redis_queue.cpp); why and fsck have
// no Redis form.
struct queue_config;
int run_redis_enqueue(const queue_config& q, const enqueue_options& options);
int run_redis_ls(const queue_config& q, bool json);
int run_redis_show(const queue_config& q, const std::string& id, bool json);
int run_redis_retry(const queue_config& q, const std::string& id);
int run_redis_purge(const queue_config& q, bool everything, bool yes);
int run_redis_stats(const std::vector<const queue_config*>& queues, bool json);

// Prints "spoolctl: message" on stderr.
void report(const std::string& message);

}  // namespace spoold

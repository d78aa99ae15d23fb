// The TOML file (SPEC §7) turned into a plain struct. Every problem found is
// reported with file:line:col and what was expected, all at once, so an
// operator fixes a file in one pass.
#pragma once

#include <sys/types.h>
#include <unistd.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "duration.hpp"
#include "redis_url.hpp"

namespace spoold {

struct option_entry {
  std::string key;    // dotted for nested tables
  std::string value;  // strings as they are, other scalars as TOML text
  std::int32_t index = -1;  // position in an array, -1 for a scalar
};

// [queue.sandbox] (and [defaults.sandbox], merged key by key): what a
// queue's spoolers give up after their plugins' init() and before the first
// task. See host/sandbox.hpp.
struct sandbox_config {
  bool enabled = false;  // a sandbox table applies to the queue
  // When the host runs as root: the user and group the spoolers switch to.
  std::string user;
  std::optional<std::uint32_t> uid;
  std::string group;
  std::optional<std::uint32_t> gid;  // the group's, or the user's own group
  // Landlock path rules, when either key is given (even as an empty list):
  // absolute paths the spoolers may read (and execute), or also write.
  bool path_rules = false;
  std::vector<std::string> read;
  std::vector<std::string> write;
  std::uint64_t memory = 0;       // RLIMIT_AS in bytes; 0 = unchanged
  unsigned open_files = 0;        // RLIMIT_NOFILE; 0 = unchanged
  duration cpu{0};                // CPU time per task (RLIMIT_CPU); 0 = none
  bool core = true;               // false: no core dumps
  bool require = false;           // refuse to start where Landlock is missing
};

// Where a queue with source = "redis" takes its tasks (SPEC §7).
struct redis_source_config {
  std::string url_text;  // as written, for messages
  redis_url url;
  std::string stream;    // default "spoold:<queue name>"
  std::string group = "spoold";
  // How long an entry another consumer took may stay unacknowledged before
  // a spooler takes it over as a dead host's (XAUTOCLAIM), counting a try.
  duration lease{60 * 1000};
  // A spooler takes about this much work in one batch (measured on its
  // recent tasks, at most 64 entries); 0: one entry at a time. Bounds how
  // long an entry can wait in one spooler's hands while another is idle.
  duration batch_window{2};
};

struct queue_config {
  std::string name;
  std::string dir;                   // absolute; empty for a Redis queue
  // Unset: the queue is the directory dir. Set: source = "redis".
  std::optional<redis_source_config> redis;
  std::vector<std::string> plugins;  // the chain, in order
  unsigned processes = 1;
  unsigned max_attempts = 5;
  duration backoff{1000};
  duration backoff_max{10 * 60 * 1000};
  duration timeout{0};  // 0 = no limit
  // A spooler whose plugin chain's init() has not returned by then is
  // killed (a database that does not answer); 0 = no limit.
  duration init_timeout{30 * 1000};
  unsigned max_tasks = 0;
  // A spooler whose resident set passed this many bytes after a task
  // exits and is replaced; 0 = never.
  std::uint64_t max_rss = 0;
  // The niceness (-20..19) the queue's spoolers set at start; unset, they
  // keep the master's.
  std::optional<int> nice;
  unsigned dir_mode = 0700;
  unsigned file_mode = 0600;
  // The group whose members may write tasks (a web app's www-data): the
  // directory may then be group-writable by it, and task files its members
  // own are run. Empty: only the host's user and root.
  std::string dir_group;
  std::optional<gid_t> dir_gid;  // dir_group, resolved when the file is read
  // The user the host runs as, who (with root) may own the directory and
  // its task files. load_config() sets it to the euid of the process that
  // reads the file, the master, and a spooler keeps that in its copy
  // whatever user it runs as. Unset (a config built by hand) means this
  // process's user.
  std::optional<uid_t> host_uid;
  uid_t host_user() const { return host_uid ? *host_uid : ::geteuid(); }
  std::vector<option_entry> options;
  sandbox_config sandbox;
};

struct host_config {
  std::string plugin_dir;  // absolute
  // The config file's folder: spoolers run there, so relative paths in
  // [queue.options] resolve like every other path of the file.
  std::string base_dir;
  std::string log_level = "info";
  std::string log_format = "text";
  duration shutdown_grace{30 * 1000};
  // The safety-net rescan of every queue, for missed inotify events and
  // network filesystems. 0 turns it off.
  duration rescan_interval{30 * 1000};
  // "address:port" of the Prometheus endpoint; empty = off.
  std::string metrics;
};

struct config {
  std::string path;  // the file it came from, absolute
  host_config host;
  std::vector<queue_config> queues;

  const queue_config* find_queue(const std::string& name) const;
};

struct config_load {
  config value;
  std::vector<std::string> problems;  // empty when the file is valid
  bool ok() const { return problems.empty(); }
};

// Reads and validates path. When check_plugins is set, a plugin whose file
// lib<name>.so is not in plugin_dir is a problem.
config_load load_config(const std::string& path, bool check_plugins = true);

// A size such as "512M": a whole number with an optional K, M, G or T
// (powers of 1024), or bytes; nullopt when text is not one.
std::optional<std::uint64_t> parse_size(std::string_view text);

// The file of a plugin by name: <plugin_dir>/lib<name>.so.
std::string plugin_path(const host_config& host, const std::string& plugin);

}  // namespace spoold

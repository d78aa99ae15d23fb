// Writing one task into a queue directory, shared by every native producer
// (spoolctl and the C API) so they place, date and name files the same way.
// The rules follow uWSGI's spool(): a numeric `priority` key puts the file in
// <dir>/<N>/, an `at` key sets the due time (and the file mtime).
#pragma once

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "result.hpp"
#include "spool_file.hpp"

namespace spoold {

struct task_request {
  std::vector<owned_arg> args;
  std::string body;
  // The due instant in ns since the epoch; writes the `at` key (whole
  // seconds) and sets the mtime to the exact instant.
  std::optional<std::int64_t> at_ns;
  // Writes the `priority` key and places the file in <dir>/<N>/.
  std::optional<unsigned> priority;
  bool sync = true;
  unsigned file_mode = 0600;
  unsigned dir_mode = 0700;
};

// The latest `at` a producer accepts: the last whole second whose instant in
// nanoseconds still fits an int64 (April 2262).
inline constexpr std::int64_t k_max_at_seconds = std::numeric_limits<std::int64_t>::max() / 1'000'000'000 - 1;
// The largest priority: a subdirectory name of at most 9 digits.
inline constexpr unsigned k_max_priority = 999'999'999;

// The instant an `at` key names, read as the host reads it (at_of), or
// nullopt when it is not a number or beyond k_max_at_seconds.
std::optional<std::int64_t> at_key_ns(std::string_view value);

// Sum of 4 + key + value over args: the size of the uWSGI args block.
std::size_t args_block_size(const std::vector<owned_arg>& args);

// The args a task is written with: the request's, then `at` and `priority`
// from the options (whole seconds and a decimal).
std::vector<owned_arg> task_args(const task_request& request);

// The due instant in ns: the at_ns option, else an `at` key the caller wrote
// itself (uWSGI dates the file from it too); nullopt: due now.
std::optional<std::int64_t> task_due_ns(const task_request& request);

// The priority level: the option, else a `priority` key that is a plain
// number of at most 9 digits (the last one given), as written ("03" stays
// "03": a directory's folder is named by it); nullopt: no priority.
std::optional<std::string> task_priority(const task_request& request);

// Checks a request without touching the disk. Fails with code EINVAL for an
// empty key, an `at` or `priority` given both as an option and as a key, or
// an out-of-range instant; with E2BIG when the args block is over 65535 bytes.
result<void> check_task(const task_request& request);

// Writes the task as queue_dir/[N/]id atomically (temporary name, fsync
// unless !sync, rename), creating missing directories with dir_mode.
// check_task() failures come back with their code; disk failures carry the
// errno and name the path. Returns the path written.
result<std::string> enqueue_task(const std::string& queue_dir, const task_request& request, const std::string& id);

}  // namespace spoold

// What is in a queue directory (SPEC §3): pending and delayed tasks in the
// top directory and its numeric priority subdirectories, failed ones in
// failed/. Only names starting with uwsgi_spoolfile_on_ are tasks; nothing
// is followed through a symlink. Read-only, so it is safe beside a running
// host; a file that vanishes while being read was taken and is left out.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "posix.hpp"
#include "result.hpp"

namespace spoold {

inline constexpr std::string_view k_failed_dir = "failed";
inline constexpr std::string_view k_note_suffix = ".error";
// A file shorter than its header says and younger than this is being
// written by a producer that creates, then fills, its file (uWSGI).
inline constexpr std::int64_t k_write_grace_ns = 10'000'000'000;

// in_flight: locked by a process handling it now (a pending, delayed or
// ignored task under a lock; a failed one stays failed).
// ignored: no plugin of the running host took it (SPEC §4); it waits for a
// change of the file or a reload, listed in the queue's .spoold-ignored.
enum class task_state { in_flight, pending, delayed, ignored, failed };
inline constexpr std::size_t k_task_states = 5;
const char* state_name(task_state state);

struct queue_entry {
  task_state state = task_state::pending;
  std::string id;
  std::string subdir;                // "" for the top directory, "<N>" or "failed"
  std::optional<unsigned> priority;  // the number of its priority subdirectory
  std::int64_t mtime_ns = 0;
  std::int64_t due_ns = 0;           // max(mtime, at)
  std::uint64_t size = 0;
  bool parsed = false;
  bool being_written = false;        // short and younger than the grace period
  std::string parse_problem;         // why it could not be parsed
  unsigned attempt = 0;
  std::optional<std::string> error;  // spoold.error, or the text of failed/<id>.error
  std::optional<std::int64_t> failed_at;  // spoold.failed_at, unix seconds
  bool has_note = false;             // failed/<id>.error is beside it
  bool locked = false;               // another process holds its lock now
};

struct queue_listing {
  std::vector<queue_entry> entries;  // pending by priority then age, delayed by due time, failed by age
  std::vector<std::string> skipped;  // files that look like tasks but were left out, and why
  bool dir_missing = false;
};

// The path of a task in a queue directory.
std::string entry_path(const std::string& dir, const queue_entry& entry);

// True for failed/<id>.error notes, which share the task prefix.
bool is_note_name(std::string_view name);

// Opens the queue directory itself (an operator's path: symlinks allowed).
result<unique_fd> open_queue_dir(const std::string& dir);
// Opens a subdirectory of the queue ("" is the queue itself) without
// following a symlink.
result<unique_fd> open_queue_subdir(int queue_fd, const std::string& dir, const std::string& subdir);

// Everything in the queue at dir; now_ns decides pending against delayed.
// A missing directory is an empty queue with dir_missing set.
result<queue_listing> list_queue(const std::string& dir, std::int64_t now_ns);

// One task by id, looked up in the same places; nullopt when there is none.
result<std::optional<queue_entry>> find_task(const std::string& dir, const std::string& id, std::int64_t now_ns);

}  // namespace spoold

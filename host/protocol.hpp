// What the master and a spooler say to each other over their socketpair
// (SOCK_SEQPACKET: one message per send, never merged or split), and the
// shared-memory slot where a spooler shows which task it is inside.
//
// The master names a due task; the spooler claims it under the file lock,
// runs the plugin chain, acts on the status, and reports one outcome per
// assignment, in order. The slot lets the master attribute a crash or a
// timeout to the exact task without a message per state change.
#pragma once

#include <atomic>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "queue_dir.hpp"

namespace spoold {

struct assignment {
  std::uint64_t seq = 0;
  std::string task;  // task_ref::relative()
};

enum class outcome : std::int32_t {
  done,          // Ok: deleted
  rescheduled,   // Retry: rewritten, due at due_ns
  failed,        // moved to failed/
  ignored,       // no plugin in the chain took it: left untouched
  busy,          // locked by someone else
  gone,          // no longer there
  not_due,       // due at due_ns
  incomplete,    // being written; look again at due_ns
  unparsable,    // moved to failed/ with the reason
  rejected,      // not a task file; left alone
  io_error,      // could not act; the file is as it was
};

struct report {
  std::uint64_t seq = 0;
  outcome result = outcome::io_error;
  std::int64_t due_ns = 0;
  file_identity identity;
};

inline constexpr std::size_t k_max_message = 512;

// Fixed-layout encodings, both sides in one binary, so memcpy is enough.
inline std::size_t encode(const assignment& a, char* buf) {
  std::memcpy(buf, &a.seq, sizeof(a.seq));
  const std::size_t n = std::min(a.task.size(), k_max_message - sizeof(a.seq));
  std::memcpy(buf + sizeof(a.seq), a.task.data(), n);
  return sizeof(a.seq) + n;
}
inline bool decode(const char* buf, std::size_t size, assignment& a) {
  if (size < sizeof(a.seq)) return false;
  std::memcpy(&a.seq, buf, sizeof(a.seq));
  a.task.assign(buf + sizeof(a.seq), size - sizeof(a.seq));
  return true;
}

// One per spooler process, in a MAP_SHARED page made before fork.
struct spooler_slot {
  // The assignment whose task the spooler holds the lock of and is
  // handling, 0 between tasks.
  std::atomic<std::uint64_t> current_seq{0};
  // CLOCK_MONOTONIC when that task's handling began.
  std::atomic<std::int64_t> started_ns{0};
  // Set by the master: finish the task in hand, take no other, exit 0.
  std::atomic<std::uint32_t> stop{0};
};

}  // namespace spoold

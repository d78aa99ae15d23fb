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
  // Not empty when a spooler died inside this task: the try it owes is
  // counted first (reschedule or failed/, with this reason), and the plugin
  // chain does not run. Whoever takes the task next pays the debt, so a
  // crash's try is never lost to a busy file or an I/O error.
  std::string owed_try;
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

// A spooler's first message, once every plugin's init() has returned, is a
// report with seq 0: the master names tasks only to spoolers that sent it.
inline constexpr std::uint64_t k_ready_seq = 0;

struct report {
  std::uint64_t seq = 0;
  outcome result = outcome::io_error;
  std::int64_t due_ns = 0;
  file_identity identity;
  std::int64_t handle_ns = -1;  // time in the plugin chain; -1 when none ran
  // The Status the chain returned (anything else was made a Retry), when a
  // chain ran: tells a plugin's Fail from a Retry past max_attempts.
  std::int32_t plugin_status = 0;
};

// Both directions carry batches, so that a backlog costs the master one
// wake-up per batch, not per task: the master names up to k_max_batch tasks
// in one message, and a spooler reports the outcomes of a batch in one
// message when it has finished it.
inline constexpr std::size_t k_max_batch = 64;
inline constexpr std::size_t k_max_name = 300;  // "N/" + a task name (< 256)
inline constexpr std::size_t k_max_owed = 400;  // the reason of an owed try
inline constexpr std::size_t k_max_message = k_max_batch * (sizeof(std::uint64_t) + 4 + k_max_name + k_max_owed);

// An assignment batch: repeated [u64 seq][u16 length][relative name]
// [u16 length][owed try]. Both sides are one binary, so native byte order
// is enough.
inline void append(const assignment& a, std::string& out) {
  const auto n = static_cast<std::uint16_t>(std::min(a.task.size(), k_max_name));
  const auto o = static_cast<std::uint16_t>(std::min(a.owed_try.size(), k_max_owed));
  out.append(reinterpret_cast<const char*>(&a.seq), sizeof(a.seq));
  out.append(reinterpret_cast<const char*>(&n), sizeof(n));
  out.append(a.task.data(), n);
  out.append(reinterpret_cast<const char*>(&o), sizeof(o));
  out.append(a.owed_try.data(), o);
}
// Decodes a batch into out; false if the message is malformed.
template <class Container>
bool decode_batch(const char* buf, std::size_t size, Container& out) {
  std::size_t pos = 0;
  while (pos < size) {
    assignment a;
    std::uint16_t n = 0;
    if (size - pos < sizeof(a.seq) + sizeof(n)) return false;
    std::memcpy(&a.seq, buf + pos, sizeof(a.seq));
    std::memcpy(&n, buf + pos + sizeof(a.seq), sizeof(n));
    pos += sizeof(a.seq) + sizeof(n);
    if (size - pos < n) return false;
    a.task.assign(buf + pos, n);
    pos += n;
    if (size - pos < sizeof(n)) return false;
    std::memcpy(&n, buf + pos, sizeof(n));
    pos += sizeof(n);
    if (size - pos < n) return false;
    a.owed_try.assign(buf + pos, n);
    pos += n;
    out.push_back(std::move(a));
  }
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
  // Set by the spooler when it stops by itself (max_tasks, max_rss), before
  // its last report: the master names it no more tasks, and its exit is a
  // recycle, not a spooler it could not talk to.
  std::atomic<std::uint32_t> leaving{0};
  // Set by the master when the task in hand has run so long that it gave
  // the names queued behind it to other spoolers: the spooler skips the
  // assignments with revoked_after < seq <= revoked_to. (Written in that
  // order, read in the other: a mix of old and new values still covers only
  // names after the task in hand, and the lock keeps even a name taken by
  // two spoolers from running twice at once.)
  std::atomic<std::uint64_t> revoked_to{0};
  std::atomic<std::uint64_t> revoked_after{0};
  // A Redis queue's spooler: the entry it is inside (spooler_board.hpp's
  // entry_ref), written before current_seq is set, so that the master's
  // exit note can say which entry a dead spooler owes a try for.
  std::atomic<std::int64_t> entry_priority{-1};
  std::atomic<std::uint64_t> entry_ms{0};
  std::atomic<std::uint64_t> entry_seq{0};
  // The index in the queue's chain of the plugin whose init() is running,
  // so that the master can name the plugin of a spooler stuck in init().
  std::atomic<std::uint32_t> init_plugin{0};
};

}  // namespace spoold

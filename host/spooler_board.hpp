// A MAP_SHARED region the master makes before its first fork, seen by every
// spooler of the host, for what spoolers of a Redis queue must learn of each
// other without a message per task:
//
//  - exit notes: the master writes one when it reaps a spooler of a Redis
//    queue: how it ended and, when it died inside a task, which entry. The
//    spooler that takes over the dead consumer's entries counts a try for
//    that entry alone and runs the rest, which were handed to the dead
//    spooler in a batch but never started.
//  - outages: the first spooler to find a Redis server unreachable logs it
//    and the first to reach it again logs the recovery, so that a host logs
//    an outage once, not once per spooler.
//
// Only the master writes notes (a seqlock over atomics: readers retry or
// skip a note being rewritten); spoolers share the outage flags by CAS.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace spoold {

// A stream entry as three numbers: which stream of the queue (its priority,
// -1 for the stream of no priority) and the id "ms-seq".
struct entry_ref {
  std::int64_t priority = -1;
  std::uint64_t ms = 0;
  std::uint64_t seq = 0;
  bool operator==(const entry_ref&) const = default;
};
// The entry_ref of entry id of stream, a stream of the queue whose base
// stream is base; nullopt for an id that is not "ms-seq".
std::optional<entry_ref> make_entry_ref(std::string_view base, std::string_view stream, std::string_view id);

struct exit_note {
  pid_t pid = 0;
  int wait_status = 0;
  bool timed_out = false;  // killed at the queue's timeout
  std::optional<entry_ref> in_task;  // the entry it was inside, if any
};

struct spooler_board {
  static constexpr std::size_t k_notes = 512;
  static constexpr std::size_t k_outages = 64;

  struct note_cell {
    std::atomic<std::uint64_t> version{0};  // odd while being written
    std::atomic<std::int32_t> pid{0};
    std::atomic<std::int32_t> wait_status{0};
    std::atomic<std::uint32_t> flags{0};
    std::atomic<std::int64_t> priority{-1};
    std::atomic<std::uint64_t> ms{0};
    std::atomic<std::uint64_t> seq{0};
  };
  struct outage_cell {
    std::atomic<std::uint64_t> server{0};  // a hash of the server's address; 0: free
    std::atomic<std::int64_t> since_ms{0};  // 0: not down
  };

  std::atomic<std::uint64_t> notes_written{0};
  note_cell notes[k_notes];
  outage_cell outages[k_outages];

  // Master: the note of a reaped spooler (the oldest note is overwritten).
  void post(const exit_note& n);
  // Spoolers: the newest note of pid, if the master has written one.
  std::optional<exit_note> find(pid_t pid) const;

  // Spoolers: true for the first caller since the server was last reachable
  // (it logs the outage).
  bool report_down(std::string_view server, std::int64_t now_ms);
  // Spoolers: true for the first caller after an outage (it logs the
  // recovery).
  bool report_up(std::string_view server);
};

// Maps a board before any fork; nullptr (logged) when the kernel refuses.
spooler_board* map_spooler_board();
void unmap_spooler_board(spooler_board* b);

}  // namespace spoold

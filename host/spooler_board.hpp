// A MAP_SHARED region the master makes before its first fork, seen by every
// spooler of the host, for what spoolers of a Redis queue must learn of each
// other without a message per task:
//
//  - exit notes: the master writes one when it reaps a spooler of a Redis
//    queue: how it ended and, when it died inside a task, which entry. The
//    spooler that takes over the dead consumer's entries counts a try for
//    that entry alone and runs the rest, which were handed to the dead
//    spooler in a batch but never started.
//  - reloads: how many times the master reloaded; a Redis spooler offers
//    the entries no plugin took once per host start and reload (SPEC §4,
//    Ignore), as the master does for a directory.
//  - backlogs: what a Redis queue holds (waiting, delayed, ignored, failed,
//    in flight), read by its spoolers once a second, for the master's
//    status line (USR1) and the metrics process's gauges, which never talk
//    to Redis themselves. Each number is atomic, not the five together:
//    they may come from two spoolers' readings a second apart.
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

#include "config.hpp"

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

struct redis_backlog {
  std::uint64_t waiting = 0;    // in the streams, not delivered to a spooler yet
  std::uint64_t delayed = 0;    // in the delayed zsets (a Retry's backoff, an `at` ahead)
  std::uint64_t ignored = 0;    // delivered, no plugin took them
  std::uint64_t in_flight = 0;  // delivered to a spooler, no outcome yet
  std::uint64_t failed = 0;     // in <stream>:failed
  std::int64_t read_at_ms = 0;  // wall clock of the reading
};

struct spooler_board {
  static constexpr std::size_t k_notes = 512;
  static constexpr std::size_t k_outages = 64;
  static constexpr std::size_t k_backlogs = 256;
  // A backlog not read for this long is not shown: no spooler reached
  // Redis between tasks for a minute (all in long tasks, or Redis down).
  static constexpr std::int64_t k_backlog_max_age_ms = 60'000;

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
    std::atomic<std::uint64_t> key{0};  // a hash of the server's address; 0: free
    std::atomic<std::int64_t> since_ms{0};  // 0: not down
  };

  struct backlog_cell {
    std::atomic<std::uint64_t> key{0};  // a hash of the stream and server; 0: free
    std::atomic<std::int64_t> read_at_ms{0};
    std::atomic<std::uint64_t> waiting{0}, delayed{0}, ignored{0}, in_flight{0}, failed{0};
  };

  std::atomic<std::uint64_t> reloads{0};
  std::atomic<std::uint64_t> notes_written{0};
  note_cell notes[k_notes];
  outage_cell outages[k_outages];
  backlog_cell backlogs[k_backlogs];

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

  // Spoolers: the backlog of the queue named by key (its stream at its
  // server), as read at now_ms.
  void post_backlog(std::string_view key, const redis_backlog& b, std::int64_t now_ms);
  // The master and the metrics process: the last backlog posted for key,
  // unless older than k_backlog_max_age_ms.
  std::optional<redis_backlog> backlog(std::string_view key, std::int64_t now_ms) const;
};

// The key of a Redis queue's backlog: its stream at its server.
std::string backlog_key(const queue_config& q);

// Maps a board before any fork; nullptr (logged) when the kernel refuses.
spooler_board* map_spooler_board();
void unmap_spooler_board(spooler_board* b);

}  // namespace spoold

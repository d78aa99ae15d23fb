// A Redis queue's tasks (SPEC §7, source = "redis"), as a spooler sees
// them: the keys of one queue, the entry format, and the few atomic steps
// (Lua scripts) that take an entry and record its outcome. See
// docs/design.md, "Sources".
//
// Keys, for a queue whose stream is S:
//   S, S:p<N>          streams of tasks: S:p<N> for priority N, S for none;
//                      lower N served first, S last (as a directory's N/ folders)
//   S:priorities       set of the N that have a stream
//   <s>:delayed        zset (per stream s above) of task ids due later, scored
//                      by due unix ms (an `at` in the future, a Retry's backoff)
//   <s>:task:<id>      list of the fields of a delayed task, in order
//   <s>:ignored        set of entry ids no plugin took, left unacknowledged
//   <s>:ignored:offered  the host start or reload that last offered them again
//   S:failed           stream of failed tasks: their fields + spoold.error,
//                      spoold.attempt
// An entry's fields are the task's args (key, value, in order, binary-safe)
// and spoold.id (the task id), spoold.body (the body), spoold.attempt
// (finished tries), spoold.error (the last error).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "config.hpp"
#include "redis_conn.hpp"
#include "redis_limits.hpp"
#include "spooler_board.hpp"

namespace spoold {

// One entry of a stream of the queue, as Redis gave it.
struct redis_entry {
  std::string stream;  // the stream it is in: S or S:p<N>
  std::string id;      // the entry id, "1700000000000-0"
  std::vector<std::pair<std::string, std::string>> fields;
};

// A consumer of this host's master whose spooler is gone, in one stream.
struct dead_consumer {
  std::string stream;
  std::string name;
  pid_t pid = 0;
};

// What a spooler hands the plugin chain, or why the entry is not a task.
struct redis_task {
  std::string task_id;
  std::uint32_t attempt = 0;
  std::string_view body;
  std::vector<std::pair<std::string_view, std::string_view>> args;  // without spoold.id and spoold.body
  std::string malformed;  // not empty: the reason it goes to S:failed
};

// Vets an entry: spoold.id present and a plain name, spoold.attempt a
// number, sizes within a spool file's limits.
redis_task parse_entry(const redis_entry& e);

// The streams of a queue in serving order, for the priorities known.
std::vector<std::string> queue_streams(const std::string& base, const std::vector<unsigned>& priorities);

// The stream a task of this priority goes to ("" or a number).
std::string stream_for_priority(const std::string& base, const std::string& priority);

class redis_source {
 public:
  redis_source(const queue_config& q, std::string consumer);

  // Loads the scripts (after every connect).
  result<void> prepare(redis_conn& c);

  // The priorities with a stream (SMEMBERS S:priorities), lowest first.
  result<std::vector<unsigned>> priorities(redis_conn& c);

  // The command that moves due delayed tasks of every stream into it, then
  // takes up to count entries, from the first stream that has one.
  std::vector<std::string> take_command(const std::vector<std::string>& streams, std::int64_t now_ms,
                                        std::size_t count) const;
  // Reads take_command's reply: the entries, or none with next_due_ms set
  // to the earliest delayed task (or -1).
  static std::vector<redis_entry> read_take(const redisReply* r, std::int64_t& next_due_ms);

  // XREADGROUP ... BLOCK: waits up to block for entries of any stream (up
  // to count of each).
  result<std::vector<redis_entry>> wait(redis_conn& c, const std::vector<std::string>& streams,
                                        std::chrono::milliseconds block, std::size_t count);

  // The outcome commands; each acknowledges the entry first and does
  // nothing else when it was no longer pending (another consumer's
  // outcome came first).
  std::vector<std::string> ok_command(const redis_entry& e) const;
  std::vector<std::string> retry_command(const redis_entry& e, const std::string& task_id, std::uint32_t attempt,
                                         const std::string& error, std::int64_t due_ms) const;
  std::vector<std::string> fail_command(const redis_entry& e, std::uint32_t attempt, const std::string& error) const;
  std::vector<std::string> ignore_command(const redis_entry& e) const;
  // Gives back an entry handed to this consumer and not started: to the end
  // of its stream, fields untouched, no try counted.
  std::vector<std::string> release_command(const redis_entry& e) const;

  // The consumers of this host's master (names starting with prefix) whose
  // process is gone, per stream.
  result<std::vector<dead_consumer>> dead_consumers(redis_conn& c, const std::vector<std::string>& streams,
                                                    const std::string& prefix);
  // Claims what a dead consumer held for this consumer and removes it.
  result<std::vector<redis_entry>> take_over(redis_conn& c, const dead_consumer& d);
  // Entries idle longer than the lease in any consumer's hands (a dead
  // host's): claimed for this consumer (XAUTOCLAIM).
  result<std::vector<redis_entry>> take_over_expired(redis_conn& c, const std::vector<std::string>& streams);
  // The entries no plugin took, claimed for this consumer to run again,
  // once per token (a host start or reload): none when another spooler
  // offered them for this token already.
  result<std::vector<redis_entry>> offer_ignored(redis_conn& c, const std::vector<std::string>& streams,
                                                 const std::string& token);
  // What the queue holds, in one round trip (the delayed, ignored and
  // pending counts of every stream and the failed stream's length).
  result<redis_backlog> backlog(redis_conn& c, const std::vector<std::string>& streams);
  // Whether the entry is one no plugin took (then no try is counted).
  result<bool> is_ignored(redis_conn& c, const redis_entry& e);
  // Leaves the group (XGROUP DELCONSUMER) when this consumer holds nothing.
  void leave(redis_conn& c, const std::vector<std::string>& streams);

  const std::string& consumer() const { return consumer_; }
  const std::string& base() const { return base_; }

 private:
  struct script {
    const char* text;
    std::string sha;
  };
  std::vector<std::string> eval(const script& s, std::vector<std::string> keys, std::vector<std::string> args) const;

  const queue_config& q_;
  std::string base_;
  std::string group_;
  std::string consumer_;
  script take_, ok_, retry_, fail_, release_, offer_ignored_, take_over_;
};

// Parses the [id, [field, value, ...]] of an entry in a stream reply.
std::optional<redis_entry> entry_from_reply(const std::string& stream, const redisReply* r);

}  // namespace spoold

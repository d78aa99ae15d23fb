// The Redis Stream source of a spooler (SPEC §7, source = "redis"): the
// spooler takes entries of its queue's streams itself, as a consumer of the
// queue's group (the master only supervises it), in batches sized to a few
// milliseconds of work; its outcomes go through a redis_link (written as
// each task ends, kept while the server is unreachable). See
// docs/design.md, "Sources".
#pragma once

#include <sys/types.h>

#include <deque>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "config.hpp"
#include "protocol.hpp"
#include "redis_link.hpp"
#include "redis_source.hpp"
#include "spooler_board.hpp"
#include "spooler_process.hpp"
#include "task_source.hpp"

namespace spoold {

class redis_task_source final : public task_source {
 public:
  // Connects (before the sandbox, which may switch user; a reconnection
  // later is not refused by it: Landlock's rules do not cover connect()).
  redis_task_source(const queue_config& queue, const plugin_chain& chain, int socket_fd, spooler_slot* slot,
                    spooler_board* board, pid_t master_pid);

  bool take(source_task& t) override;
  void record(const source_task& t, const chain_verdict& v) override;
  void record_owed_try(const source_task& t) override;
  int close() override;

 private:
  // An entry delivered to this consumer and not handed out yet.
  struct held_entry {
    redis_entry entry;
    std::string owed_try;  // not empty: taken over from a dead consumer, in its task
  };

  bool stopping() const;
  bool hand_out(held_entry h, source_task& t);
  void maintain();
  void take_over_dead();
  void hold_taken_over(const redis_entry& e, std::string owed);
  void fetch();
  std::size_t batch_size() const;
  void finish(const redis_entry& e, const redis_task& t, std::string reason, bool fail_now, log_fields& line);
  void show_in_slot(const redis_entry& e);

  const queue_config& queue_;
  const plugin_chain& chain_;
  spooler_slot* slot_;
  spooler_board* board_;
  std::string prefix_;  // "<host>:<master pid>:", the consumers of this host's spoolers
  redis_source source_;
  std::string backlog_key_;
  redis_link link_;
  std::vector<std::string> streams_;
  std::deque<held_entry> held_;
  redis_entry current_;  // the entry handed out; current_task_ views into it
  redis_task current_task_;
  std::unordered_map<std::string, unsigned> unnoted_;  // dead consumers seen before the master's note
  std::uint64_t seq_ = 0;
  bool ignored_offered_ = false;
  double avg_task_ns_ = 0;
  std::int64_t next_streams_ms_ = 0;
  std::int64_t next_takeover_ms_ = 0;
};

}  // namespace spoold

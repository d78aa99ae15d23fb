// The directory source of a spooler (SPEC §2): the master names due tasks
// over the socket in batches; this side claims each under its file lock,
// records the outcome in the file (unlink, rewrite, failed/) and reports it
// to the master, one message per batch.
#pragma once

#include <sys/types.h>

#include <deque>
#include <memory>
#include <optional>
#include <vector>

#include "config.hpp"
#include "finish_try.hpp"
#include "logging.hpp"
#include "protocol.hpp"
#include "queue_dir.hpp"
#include "task_source.hpp"

namespace spoold {

class dir_task_source final : public task_source {
 public:
  dir_task_source(const queue_config& queue, const plugin_chain& chain, std::unique_ptr<queue_dir> dir, int socket_fd,
                  spooler_slot* slot);

  bool take(source_task& t) override;
  void record(const source_task& t, const chain_verdict& v) override;
  void record_owed_try(const source_task& t) override;
  int close() override;

 private:
  bool receive();
  bool flush();
  // Claims the assignment's file: true when t holds a task to run or an
  // owed try to count; otherwise the report says why not.
  bool claim(const assignment& a, source_task& t);
  void end_try(const std::string& reason, bool fail_now, std::int64_t now, const try_facts& facts, log_fields line,
               spdlog::level::level_enum rescheduled, std::string_view io_note);

  const queue_config& queue_;
  const plugin_chain& chain_;
  std::unique_ptr<queue_dir> dir_;
  int socket_;
  spooler_slot* slot_;
  std::vector<char> buf_;
  std::deque<assignment> todo_;
  std::vector<report> done_;
  std::optional<claimed_task> task_;  // the one handed out
  int exit_code_ = 0;
};

}  // namespace spoold

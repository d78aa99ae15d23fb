// Where a spooler's tasks come from and where their outcomes go: a queue's
// source (docs/design.md, "Sources"). The spooler's loop (spooler.cpp) is
// the same for every source:
//
//   while a task is taken:
//     a try a dead spooler or host owes  -> record_owed_try(), no plugin runs
//     otherwise                          -> the plugin chain, then record()
//   close()
//
// Two implementations: dir_task_source (the directory of SPEC §2; the master
// indexes it and names the due tasks, the spooler claims each under its file
// lock) and redis_task_source (a Redis Stream; the spooler takes entries
// from its consumer group itself).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <spoold/plugin.hpp>

#include "plugin_chain.hpp"

namespace spoold {

// The task a source handed this spooler, valid until the next take().
struct source_task {
  std::uint64_t seq = 0;  // never 0: shown in the slot while the chain runs
  std::string_view id;    // the task's name, for the plugins and the log
  std::uint32_t attempt = 0;
  std::vector<spoold_arg> args;
  std::string_view body;
  // Not empty when a spooler or host died inside this task: the try it
  // owes is counted (record_owed_try) and the chain does not run.
  std::string owed_try;
};

class task_source {
 public:
  virtual ~task_source() = default;

  // Finds due work and hands it to this spooler: true with t filled, or
  // false when the spooler is to stop (SIGTERM, the master's stop or a
  // closed socket, an error that ends the spooler: see exit_code()). Waits
  // for work without polling. Bad input (a file or entry that is not a
  // task) is dealt with inside and never handed out.
  virtual bool take(source_task& t) = 0;

  // Records what the chain decided for the task take() handed out.
  virtual void record(const source_task& t, const chain_verdict& v) = 0;

  // Counts the try a dead spooler or host owes for t: rescheduled after the
  // backoff, or failed past max_attempts.
  virtual void record_owed_try(const source_task& t) = 0;

  // Before the spooler exits: the outcomes recorded reach their store (the
  // master, Redis) and what was handed to this spooler but not started is
  // given back with no try counted. Returns the spooler's exit code.
  virtual int close() = 0;
};

}  // namespace spoold

// A queue's plugin chain inside a spooler: loaded and initialised once, then
// given one task at a time; it decides a status (SPEC §4) and the reason of
// a Retry or Fail. Shared by the directory and Redis spoolers, which differ
// only in what they do with the verdict.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <spoold/plugin.hpp>

#include "config.hpp"
#include "logging.hpp"
#include "plugin_loader.hpp"
#include "protocol.hpp"
#include "spooler_process.hpp"

namespace spoold {

struct chain_verdict {
  std::int32_t status = static_cast<std::int32_t>(Status::Ignore);  // Ok, Retry, Fail or Ignore only
  std::string error;   // the reason of a Retry or Fail, never empty for those
  std::string plugin;  // the plugin that decided, or the chain's text when none did
  std::int64_t took_ns = 0;
  bool is(Status s) const { return status == static_cast<std::int32_t>(s); }
};

// The log line's name of a status: ok, retry, fail, ignore.
const char* status_name(std::int32_t s);

class plugin_chain {
 public:
  // Loads and initialises every plugin of the queue in order, showing in
  // slot which one is in init(). Returns 0, or the spooler exit code (the
  // failure is logged).
  int load(const host_config& host, const queue_config& queue, spooler_slot* slot);

  // Runs the task through the chain: Ignore passes to the next plugin, a
  // throw or an unknown value becomes Retry with a reason saying so.
  chain_verdict run(std::uint32_t attempt, std::string_view id, const std::vector<spoold_arg>& args,
                    std::string_view body);

  // The start of the task's log line: plugin, status, attempt, duration.
  log_fields line(std::string_view id, const chain_verdict& v, std::uint32_t attempt) const;

  const std::string& text() const { return text_; }  // "a -> b"

 private:
  std::string queue_;
  std::vector<std::unique_ptr<plugin_log_context>> log_contexts_;
  std::vector<std::unique_ptr<loaded_plugin>> plugins_;
  std::string text_;
};

}  // namespace spoold

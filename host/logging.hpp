// One logger for the host and its spoolers, on stderr, in text or JSON
// lines. Each process writes whole lines, so lines from the master and its
// spoolers do not interleave mid-line.
//
// JSON lines carry time, level, pid, role and message, and the fields of a
// structured line (log_event) each on its own: queue, task, plugin, status,
// attempt, duration_ms, next_try_in, error, and the counts of a status
// line. The fields come from the call, not from parsing the text: a task's
// file name and a plugin's error are untrusted text that could otherwise
// pose as a field. Every string is escaped, and bytes that are not UTF-8
// are written as \u00XX, so a line stays one valid JSON object whatever it
// holds.
#pragma once

#include <spdlog/spdlog.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace spoold {

// Installs the default spdlog logger. role is "master", "spooler", "check".
void setup_logging(const std::string& level, const std::string& format, const std::string& role);

// The queue every line of this process is about (a spooler's): a JSON
// field of lines that do not name one themselves.
void set_log_queue(std::string queue);

// What a structured line is about. Text lines show them as they always
// did: "task <id> queue=<q> plugin=<p> status=<s> attempt=<n>
// duration=<d>ms next_try_in=<t>: <message>: <error>", or
// "plugin <p> queue=<q>: <message>" for a line about no task.
struct log_fields {
  std::string_view task;
  std::string_view queue;
  std::string_view plugin;
  std::string_view status;
  std::optional<std::uint64_t> attempt;
  std::optional<double> duration_ms;
  std::string_view next_try_in;
  std::string_view error;

  static log_fields about_task(std::string_view task_id, std::string_view queue_name) {
    log_fields f;
    f.task = task_id;
    f.queue = queue_name;
    return f;
  }
  log_fields& with_plugin(std::string_view v) { plugin = v; return *this; }
  log_fields& with_status(std::string_view v) { status = v; return *this; }
  log_fields& with_attempt(std::uint64_t v) { attempt = v; return *this; }
  log_fields& with_duration_ms(double v) { duration_ms = v; return *this; }
  log_fields& with_next_try_in(std::string_view v) { next_try_in = v; return *this; }
  log_fields& with_error(std::string_view v) { error = v; return *this; }
};

void log_event(spdlog::level::level_enum level, const log_fields& fields, std::string_view message);

// The USR1 status line of a queue: "status queue=<q> <name>=<count>...
// <note>" in text, each count a number in JSON. pending_complete false
// shows pending as "<n>+" (a scan still has names unread).
struct status_counts {
  std::string_view queue;
  std::vector<std::pair<std::string_view, std::uint64_t>> counts;  // pending first
  bool pending_complete = true;
  std::string_view note;
};
void log_status_line(const status_counts& s);

// Quotes a value for a log line when it has spaces or quotes in it.
std::string log_quote(std::string_view text);

}  // namespace spoold

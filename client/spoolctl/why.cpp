// spoolctl why: a task's history, one line per try, from the spoold.try.<n>
// keys the host writes into the task file each time it counts a try (a
// Retry, a Fail, the try a dead or timed-out spooler owes), so it survives
// restarts and travels with the file to failed/. Read-only.
#include <iostream>
#include <sstream>

#include "commands.hpp"
#include "json_out.hpp"
#include "posix.hpp"
#include "queue_listing.hpp"
#include "spool_file.hpp"
#include "task_reader.hpp"
#include "text_format.hpp"

namespace spoold {

namespace {

constexpr std::int64_t k_ns_per_ms = 1'000'000;

std::string pad(const std::string& text, std::size_t width) {
  return text.size() >= width ? text + " " : text + std::string(width - text.size() + 1, ' ');
}

// When the task runs next, in words; nullopt for an instant (see due_ns).
std::string next_due_text(const queue_entry& e, std::int64_t now, const std::string& queue_arg) {
  switch (e.state) {
    case task_state::in_flight: return "running now (a process holds its lock)";
    case task_state::pending:
      return e.due_ns <= now ? "now: due since " + format_time(e.due_ns) : format_time(e.due_ns);
    case task_state::delayed: return format_time(e.due_ns) + " (in " + format_span(e.due_ns - now) + ")";
    case task_state::ignored: return "when the file changes or the host reloads (no plugin took it)";
    case task_state::failed: return "never: it is in failed/ (spoolctl retry " + queue_arg + " ID runs it again)";
  }
  return "";
}

}  // namespace

int run_why(const queue_target& queue, const std::string& id, bool as_json) {
  const std::int64_t now = now_ns();
  auto found = find_task(queue.dir, id, now);
  if (!found) {
    report(found.err().message);
    return exit_failure;
  }
  if (!*found) {
    report("no task " + escape_bytes(id) + " in " + queue.label + " (pending, delayed or failed): see spoolctl ls");
    return exit_failure;
  }
  const queue_entry& e = **found;
  const std::string path = entry_path(queue.dir, e);
  auto queue_fd = open_queue_dir(queue.dir);
  if (!queue_fd) {
    report(queue_fd.err().message);
    return exit_failure;
  }
  auto dir_fd = open_queue_subdir(queue_fd->get(), queue.dir, e.subdir);
  if (!dir_fd) {
    report(dir_fd.err().message);
    return exit_failure;
  }
  auto fd = open_task_file(dir_fd->get(), e.id, path, false);
  if (!fd) {
    report(fd.err().message);
    return exit_failure;
  }
  auto file = read_task_head(fd->get(), path, 0);
  if (!file) {
    report(file.err().message);
    return exit_failure;
  }
  const parse_result parsed = parse_spool_file(file->head);
  std::vector<try_record> tries;
  if (parsed.ok()) tries = tries_of(*parsed.task);
  // Entries before the oldest one kept were dropped (k_max_tries_kept).
  const std::uint64_t not_kept = tries.empty() ? 0 : tries.front().number - 1;
  const bool next_is_instant =
      e.state == task_state::pending || e.state == task_state::delayed;

  if (as_json) {
    json doc;
    doc["id"] = json_text(e.id);
    doc["queue"] = queue.name.empty() ? json(nullptr) : json(queue.name);
    doc["state"] = state_name(e.state);
    doc["next_due"] = next_is_instant ? json_time(e.due_ns) : json(nullptr);
    doc["tries"] = json::array();
    for (const auto& t : tries) {
      json j;
      j["started_at"] = t.started_ms ? json_time(*t.started_ms * k_ns_per_ms) : json(nullptr);
      j["pid"] = t.pid ? json(*t.pid) : json(nullptr);
      j["duration_ms"] = t.duration_ms ? json(*t.duration_ms) : json(nullptr);
      j["status"] = json_text(t.status);
      j["error"] = json_text(t.error);
      j["attempt"] = t.attempt;
      j["number"] = t.number;
      j["counted_at"] = json_time(t.counted_ms * k_ns_per_ms);
      doc["tries"].push_back(j);
    }
    doc["attempt"] = parsed.ok() ? json(attempt_of(*parsed.task)) : json(nullptr);
    doc["tries_not_kept"] = not_kept;
    doc["dir"] = json_text(queue.dir);
    doc["path"] = json_text(path);
    doc["error"] = e.error ? json(json_text(*e.error)) : json(nullptr);
    return print_json(doc);
  }

  const std::string queue_arg = queue.name.empty() ? "--dir " + queue.dir : queue.name;
  std::ostringstream out;
  out << "task:     " << escape_bytes(e.id) << '\n';
  out << "queue:    " << escape_bytes(queue.label) << '\n';
  out << "state:    " << state_name(e.state) << '\n';
  if (!parsed.ok()) {
    out << "format:   unparsable: " << escape_bytes(parsed.failure.reason) << '\n';
    if (e.error) out << "error:    " << first_line(*e.error, 200) << '\n';
  } else {
    out << "attempt:  " << attempt_of(*parsed.task) << " (tries counted since it was enqueued or retried)\n";
  }
  if (tries.empty()) {
    out << "tries:    none recorded" << (parsed.ok() && attempt_of(*parsed.task) > 0
                                            ? " (counted by a host that kept no history)"
                                            : "")
        << '\n';
  } else {
    out << "tries:\n";
    if (not_kept > 0) out << "  (" << not_kept << " earlier " << (not_kept == 1 ? "try" : "tries") << " not kept)\n";
    out << "  " << pad("#", 4) << pad("STARTED", 30) << pad("PID", 8) << pad("DURATION", 9) << pad("STATUS", 8)
        << "ERROR\n";
    for (const auto& t : tries) {
      const std::string started =
          t.started_ms ? format_time(*t.started_ms * k_ns_per_ms)
                       : "? (counted " + format_time(t.counted_ms * k_ns_per_ms).substr(11, 12) + ")";
      out << "  " << pad(std::to_string(t.number), 4) << pad(started, 30)
          << pad(t.pid ? std::to_string(*t.pid) : "?", 8)
          << pad(t.duration_ms ? format_span(*t.duration_ms * k_ns_per_ms) : "?", 9) << pad(escape_bytes(t.status), 8)
          << first_line(t.error, 160) << '\n';
    }
  }
  out << "next due: " << next_due_text(e, now, queue_arg) << '\n';
  std::cout << out.str() << std::flush;
  return std::cout ? exit_ok : exit_failure;
}

}  // namespace spoold

// spoolctl ls and show: read-only views of a queue, safe beside a running host.
#include <algorithm>
#include <cstdio>
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

constexpr std::size_t k_error_column_chars = 80;
constexpr std::size_t k_preview_bytes = 256;

std::string when_of(const queue_entry& e, std::int64_t now) {
  switch (e.state) {
    case task_state::in_flight: return "age " + format_span(now - e.mtime_ns) + ", running";
    case task_state::pending: return "age " + format_span(now - e.mtime_ns);
    case task_state::delayed: return "in " + format_span(e.due_ns - now);
    case task_state::ignored: return "age " + format_span(now - e.mtime_ns) + ", no plugin took it";
    case task_state::failed: {
      const std::int64_t at = e.failed_at ? *e.failed_at * 1'000'000'000 : e.mtime_ns;
      return format_span(now - at) + " ago";
    }
  }
  return "";
}

// "in 4m02s" or "12s ago".
std::string relative(std::int64_t when, std::int64_t now) {
  return when > now ? "in " + format_span(when - now) : format_span(now - when) + " ago";
}

std::string problem_of(const queue_entry& e) {
  if (e.error) return first_line(*e.error, k_error_column_chars);
  if (e.being_written) return "(being written)";
  if (!e.parsed) return "unparsable: " + first_line(e.parse_problem, k_error_column_chars);
  return "";
}

// An error text over several lines, each indented under the label.
std::string indented(const std::string& text) {
  std::string out;
  std::size_t start = 0;
  for (;;) {
    const std::size_t eol = text.find('\n', start);
    const std::string_view line = std::string_view(text).substr(start, eol == std::string::npos ? eol : eol - start);
    if (!out.empty()) out += "\n            ";
    out += escape_bytes(line);
    if (eol == std::string::npos || eol + 1 == text.size()) break;
    start = eol + 1;
  }
  return out;
}

void print_row(const std::string& state, const std::string& prio, const std::string& attempt, const std::string& when,
               const std::string& id, std::size_t id_width, const std::string& problem) {
  std::ostringstream line;
  line << state << std::string(9 - std::min<std::size_t>(state.size(), 8), ' ');
  line << prio << std::string(prio.size() < 10 ? 11 - prio.size() : 1, ' ');
  line << attempt << std::string(attempt.size() < 8 ? 9 - attempt.size() : 1, ' ');
  line << when << std::string(when.size() < 14 ? 15 - when.size() : 1, ' ');
  line << id;
  if (!problem.empty()) line << std::string(id.size() < id_width ? id_width - id.size() + 2 : 2, ' ') << problem;
  std::cout << line.str() << '\n';
}

}  // namespace

json entry_json(const queue_entry& e) {
  json t;
  t["id"] = json_text(e.id);
  t["state"] = state_name(e.state);
  t["priority"] = e.priority ? json(*e.priority) : json(nullptr);
  t["attempt"] = e.parsed ? json(e.attempt) : json(nullptr);
  t["mtime"] = json_time(e.mtime_ns);
  t["due"] = e.state == task_state::failed || e.state == task_state::ignored ? json(nullptr) : json_time(e.due_ns);
  t["size"] = e.size;
  t["error"] = e.error ? json(json_text(*e.error)) : json(nullptr);
  t["failed_at"] = e.failed_at ? json(*e.failed_at) : json(nullptr);
  t["parsed"] = e.parsed;
  t["being_written"] = e.being_written;
  t["parse_problem"] = e.parsed ? json(nullptr) : json(json_text(e.parse_problem));
  return t;
}

int run_ls(const queue_target& queue, bool as_json) {
  const std::int64_t now = now_ns();
  auto listing = list_queue(queue.dir, now);
  if (!listing) {
    report(listing.err().message);
    return exit_failure;
  }
  if (listing->dir_missing) {
    report("the directory of " + queue.label + " does not exist yet: nothing was enqueued and no host has started on it");
  }
  std::size_t counts[k_task_states] = {};
  for (const auto& e : listing->entries) ++counts[static_cast<int>(e.state)];
  if (as_json) {
    json doc;
    doc["queue"] = queue.name.empty() ? json(nullptr) : json(queue.name);
    doc["dir"] = json_text(queue.dir);
    doc["dir_missing"] = listing->dir_missing;
    json c;
    for (std::size_t i = 0; i < k_task_states; ++i) c[state_name(static_cast<task_state>(i))] = counts[i];
    doc["counts"] = c;
    doc["tasks"] = json::array();
    for (const auto& e : listing->entries) doc["tasks"].push_back(entry_json(e));
    doc["skipped"] = json::array();
    for (const auto& s : listing->skipped) doc["skipped"].push_back(json_text(s));
    for (const auto& s : listing->skipped) report("skipped " + s);
    return print_json(doc);
  }
  std::size_t id_width = 2;
  for (const auto& e : listing->entries) id_width = std::max(id_width, escape_bytes(e.id).size());
  if (!listing->entries.empty()) print_row("STATE", "PRIORITY", "ATTEMPT", "WHEN", "ID", id_width, "ERROR");
  for (const auto& e : listing->entries) {
    print_row(state_name(e.state), e.priority ? std::to_string(*e.priority) : "-",
              e.parsed ? std::to_string(e.attempt) : "-", when_of(e, now), escape_bytes(e.id), id_width, problem_of(e));
  }
  const auto n = [&](task_state s) { return counts[static_cast<int>(s)]; };
  if (n(task_state::in_flight) != 0) std::cout << n(task_state::in_flight) << " in flight, ";
  std::cout << n(task_state::pending) << " pending, " << n(task_state::delayed) << " delayed, ";
  if (n(task_state::ignored) != 0) std::cout << n(task_state::ignored) << " ignored, ";
  std::cout << n(task_state::failed) << " failed\n" << std::flush;
  for (const auto& s : listing->skipped) report("skipped " + s);
  return std::cout ? exit_ok : exit_failure;
}

int run_show(const queue_target& queue, const std::string& id, bool as_json) {
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

  // Read again for the args and the body preview, which the listing drops.
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
  auto file = read_task_head(fd->get(), path, k_preview_bytes);
  if (!file) {
    report(file.err().message);
    return exit_failure;
  }
  const parse_result parsed = parse_spool_file(file->head);
  if (as_json) {
    json doc = entry_json(e);
    doc["queue"] = queue.name.empty() ? json(nullptr) : json(queue.name);
    doc["dir"] = json_text(queue.dir);
    doc["path"] = json_text(path);
    doc["args"] = json::array();
    if (parsed.ok()) {
      for (const auto& a : parsed.task->args) {
        doc["args"].push_back(json{{"key", json_text(a.key)}, {"value", json_text(a.value)}});
      }
    }
    doc["body_size"] = file->body_size;
    doc["body_preview"] = json_text(file->body_preview);
    return print_json(doc);
  }

  std::ostringstream out;
  out << "id:         " << escape_bytes(e.id) << '\n';
  out << "state:      " << state_name(e.state) << (e.being_written ? " (being written)" : "") << '\n';
  out << "path:       " << escape_bytes(path) << '\n';
  out << "priority:   " << (e.priority ? std::to_string(*e.priority) : "-") << '\n';
  out << "size:       " << file->st.st_size << " bytes\n";
  out << "modified:   " << format_time(mtime_ns(file->st)) << " (" << relative(mtime_ns(file->st), now) << ")\n";
  if (e.state == task_state::ignored) {
    out << "due:        not offered again until the file changes or the host reloads (no plugin took it)\n";
  } else if (e.state == task_state::in_flight) {
    out << "due:        running now (a process holds its lock)\n";
  } else if (e.state != task_state::failed) {
    out << "due:        " << format_time(e.due_ns) << " (" << relative(e.due_ns, now) << ")\n";
  }
  if (!parsed.ok()) {
    out << "format:     unparsable: " << escape_bytes(parsed.failure.reason) << '\n';
    if (e.error) out << "error:      " << indented(*e.error) << '\n';
    std::cout << out.str() << std::flush;
    return std::cout ? exit_ok : exit_failure;
  }
  const spool_view& task = *parsed.task;
  out << "attempt:    " << attempt_of(task) << '\n';
  if (e.failed_at) out << "failed_at:  " << format_time(*e.failed_at * 1'000'000'000) << " (unix " << *e.failed_at << ")\n";
  if (e.error) out << "error:      " << indented(*e.error) << '\n';
  out << "args:       " << task.args.size() << '\n';
  for (const auto& a : task.args) {
    out << "  " << escape_bytes(a.key) << " = " << escape_bytes(a.value) << '\n';
  }
  out << "body:       " << file->body_size << " bytes\n";
  if (file->body_size > 0) {
    out << "  preview:  \"" << escape_bytes(file->body_preview) << '"'
        << (file->body_size > file->body_preview.size() ? "..." : "") << '\n';
  }
  std::cout << out.str() << std::flush;
  return std::cout ? exit_ok : exit_failure;
}

}  // namespace spoold

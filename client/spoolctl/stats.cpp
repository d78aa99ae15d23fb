// spoolctl stats: per queue, what its directory holds right now. Read from
// the directories alone (no host needed): in flight means a process holds the
// task's lock (a spooler's OFD lock, a uWSGI spooler's POSIX lock), found
// with a lock probe that takes no lock.
#include <algorithm>
#include <iostream>
#include <sstream>

#include "commands.hpp"
#include "json_out.hpp"
#include "posix.hpp"
#include "queue_listing.hpp"
#include "text_format.hpp"

namespace spoold {

namespace {

struct queue_stats {
  const queue_target* queue = nullptr;
  bool dir_missing = false;
  std::size_t counts[k_task_states] = {};
  std::optional<std::int64_t> oldest_pending_ns;  // the mtime of the oldest pending task
  std::size_t skipped = 0;

  std::size_t count(task_state s) const { return counts[static_cast<int>(s)]; }
};

std::string pad(const std::string& text, std::size_t width) {
  return text.size() >= width ? text + " " : text + std::string(width - text.size() + 1, ' ');
}

}  // namespace

int run_stats(const std::vector<queue_target>& queues, bool as_json) {
  const std::int64_t now = now_ns();
  std::vector<queue_stats> all;
  bool ok = true;
  for (const auto& q : queues) {
    auto listing = list_queue(q.dir, now);
    if (!listing) {
      report(q.label + ": " + listing.err().message);
      ok = false;
      continue;
    }
    queue_stats s;
    s.queue = &q;
    s.dir_missing = listing->dir_missing;
    s.skipped = listing->skipped.size();
    for (const auto& e : listing->entries) {
      ++s.counts[static_cast<int>(e.state)];
      // A file still being written is not waiting yet.
      if (e.state == task_state::pending && !e.being_written) {
        s.oldest_pending_ns = std::min(s.oldest_pending_ns.value_or(e.mtime_ns), e.mtime_ns);
      }
    }
    all.push_back(s);
  }
  const auto age_s = [&](const queue_stats& s) -> std::optional<double> {
    if (!s.oldest_pending_ns) return std::nullopt;
    const std::int64_t ms = std::max<std::int64_t>(0, (now - *s.oldest_pending_ns) / 1'000'000);
    return static_cast<double>(ms) / 1000.0;
  };
  if (as_json) {
    json doc;
    doc["queues"] = json::array();
    for (const auto& s : all) {
      json q;
      q["name"] = s.queue->name.empty() ? json(nullptr) : json(s.queue->name);
      q["dir"] = json_text(s.queue->dir);
      q["pending"] = s.count(task_state::pending);
      q["delayed"] = s.count(task_state::delayed);
      q["ignored"] = s.count(task_state::ignored);
      q["failed"] = s.count(task_state::failed);
      q["in_flight"] = s.count(task_state::in_flight);
      const auto age = age_s(s);
      q["oldest_pending_age_s"] = age ? json(*age) : json(nullptr);
      q["dir_missing"] = s.dir_missing;
      q["skipped"] = s.skipped;
      doc["queues"].push_back(q);
    }
    const int printed = print_json(doc);
    return ok ? printed : exit_failure;
  }
  std::size_t name_width = 5;
  for (const auto& s : all) name_width = std::max(name_width, (s.queue->name.empty() ? s.queue->dir : s.queue->name).size());
  std::ostringstream out;
  out << pad("QUEUE", name_width) << "PENDING  DELAYED  IGNORED  FAILED  IN_FLIGHT  OLDEST_PENDING\n";
  for (const auto& s : all) {
    out << pad(escape_bytes(s.queue->name.empty() ? s.queue->dir : s.queue->name), name_width)
        << pad(std::to_string(s.count(task_state::pending)), 8) << pad(std::to_string(s.count(task_state::delayed)), 8)
        << pad(std::to_string(s.count(task_state::ignored)), 8) << pad(std::to_string(s.count(task_state::failed)), 7)
        << pad(std::to_string(s.count(task_state::in_flight)), 10)
        << (s.oldest_pending_ns ? format_span(now - *s.oldest_pending_ns) : std::string("-"))
        << (s.dir_missing ? "  (no directory yet)" : "") << '\n';
  }
  std::cout << out.str() << std::flush;
  if (!std::cout) return exit_failure;
  return ok ? exit_ok : exit_failure;
}

}  // namespace spoold

#include "spooler_board.hpp"

#include <sys/mman.h>

#include <charconv>
#include <functional>
#include <new>

#include "logging.hpp"
#include "posix.hpp"

namespace spoold {

namespace {

constexpr std::uint32_t k_in_task = 1;
constexpr std::uint32_t k_timed_out = 2;

std::optional<std::uint64_t> number(std::string_view s) {
  std::uint64_t v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return v;
}

// Never 0, which marks a free cell.
std::uint64_t cell_key(std::string_view name) { return std::hash<std::string_view>{}(name) | 1; }

// The cell of name, taking a free one (by CAS: spoolers race for it) when
// it has none; nullptr when every cell is taken by other names.
template <class Cell, std::size_t N>
Cell* claim_cell(Cell (&cells)[N], std::string_view name) {
  const std::uint64_t key = cell_key(name);
  for (Cell& c : cells) {
    std::uint64_t found = c.key.load();
    if (found == 0 && c.key.compare_exchange_strong(found, key)) found = key;
    if (found == key) return &c;
  }
  return nullptr;
}

// The cell of name, if one was claimed (cells are taken in order, never freed).
template <class Cell, std::size_t N>
Cell* find_cell(Cell (&cells)[N], std::string_view name) {
  const std::uint64_t key = cell_key(name);
  for (Cell& c : cells) {
    const std::uint64_t found = c.key.load();
    if (found == 0) break;
    if (found == key) return &c;
  }
  return nullptr;
}

}  // namespace

std::optional<entry_ref> make_entry_ref(std::string_view base, std::string_view stream, std::string_view id) {
  entry_ref r;
  if (stream != base) {
    if (stream.size() <= base.size() + 2 || stream.substr(0, base.size()) != base ||
        stream.substr(base.size(), 2) != ":p") {
      return std::nullopt;
    }
    auto p = number(stream.substr(base.size() + 2));
    if (!p || *p > 1'000'000) return std::nullopt;
    r.priority = static_cast<std::int64_t>(*p);
  }
  const auto dash = id.find('-');
  if (dash == std::string_view::npos) return std::nullopt;
  auto ms = number(id.substr(0, dash));
  auto seq = number(id.substr(dash + 1));
  if (!ms || !seq) return std::nullopt;
  r.ms = *ms;
  r.seq = *seq;
  return r;
}

void spooler_board::post(const exit_note& n) {
  note_cell& c = notes[notes_written.fetch_add(1) % k_notes];
  const std::uint64_t v = c.version.load(std::memory_order_relaxed);
  c.version.store(v + 1, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_release);
  c.pid.store(n.pid, std::memory_order_relaxed);
  c.wait_status.store(n.wait_status, std::memory_order_relaxed);
  c.flags.store((n.in_task ? k_in_task : 0) | (n.timed_out ? k_timed_out : 0), std::memory_order_relaxed);
  const entry_ref e = n.in_task.value_or(entry_ref{});
  c.priority.store(e.priority, std::memory_order_relaxed);
  c.ms.store(e.ms, std::memory_order_relaxed);
  c.seq.store(e.seq, std::memory_order_relaxed);
  c.version.store(v + 2, std::memory_order_release);
}

std::optional<exit_note> spooler_board::find(pid_t pid) const {
  // Newest first: a pid reused by a later spooler of this host has the
  // newer note.
  const std::uint64_t written = notes_written.load(std::memory_order_acquire);
  const std::uint64_t n = written < k_notes ? written : k_notes;
  for (std::uint64_t i = 0; i < n; ++i) {
    const note_cell& c = notes[(written - 1 - i) % k_notes];
    const std::uint64_t before = c.version.load(std::memory_order_acquire);
    if (before % 2 != 0 || c.pid.load(std::memory_order_relaxed) != pid) continue;
    exit_note out;
    out.pid = pid;
    out.wait_status = c.wait_status.load(std::memory_order_relaxed);
    const std::uint32_t flags = c.flags.load(std::memory_order_relaxed);
    out.timed_out = (flags & k_timed_out) != 0;
    if ((flags & k_in_task) != 0) {
      out.in_task = entry_ref{c.priority.load(std::memory_order_relaxed), c.ms.load(std::memory_order_relaxed),
                              c.seq.load(std::memory_order_relaxed)};
    }
    std::atomic_thread_fence(std::memory_order_acquire);
    if (c.version.load(std::memory_order_relaxed) != before) continue;  // rewritten meanwhile
    return out;
  }
  return std::nullopt;
}

bool spooler_board::report_down(std::string_view server, std::int64_t now_ms) {
  outage_cell* c = claim_cell(outages, server);
  if (c == nullptr) return true;  // more servers than cells: every spooler logs, as without a board
  std::int64_t since = 0;
  return c->since_ms.compare_exchange_strong(since, now_ms > 0 ? now_ms : 1);
}

bool spooler_board::report_up(std::string_view server) {
  // No cell: report_down() let every spooler log.
  outage_cell* c = find_cell(outages, server);
  return c == nullptr || c->since_ms.exchange(0) != 0;
}

void spooler_board::post_backlog(std::string_view key, const redis_backlog& b, std::int64_t now_ms) {
  backlog_cell* c = claim_cell(backlogs, key);
  if (c == nullptr) return;  // more Redis queues than cells: theirs are not shown
  c->waiting.store(b.waiting);
  c->delayed.store(b.delayed);
  c->ignored.store(b.ignored);
  c->in_flight.store(b.in_flight);
  c->failed.store(b.failed);
  c->read_at_ms.store(now_ms);
}

std::optional<redis_backlog> spooler_board::backlog(std::string_view key, std::int64_t now_ms) const {
  const backlog_cell* c = find_cell(backlogs, key);
  if (c == nullptr) return std::nullopt;
  const std::int64_t at = c->read_at_ms.load();
  if (at == 0 || now_ms - at > k_backlog_max_age_ms) return std::nullopt;
  return redis_backlog{c->waiting.load(), c->delayed.load(), c->ignored.load(), c->in_flight.load(), c->failed.load(),
                       at};
}

std::string backlog_key(const queue_config& q) {
  return q.redis ? q.redis->stream + " at " + q.redis->url.display() : std::string();
}

spooler_board* map_spooler_board() {
  void* mem = ::mmap(nullptr, sizeof(spooler_board), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) {
    spdlog::error("{}: a spooler of a Redis queue that dies in a task then has every entry it held counted as a try",
                  io_error("mmap the spoolers' shared board", errno).message);
    return nullptr;
  }
  return new (mem) spooler_board();
}

void unmap_spooler_board(spooler_board* b) {
  if (b != nullptr) ::munmap(b, sizeof(spooler_board));
}

}  // namespace spoold

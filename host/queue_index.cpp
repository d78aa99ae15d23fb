#include "queue_index.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <limits>

#include "logging.hpp"

namespace spoold {

namespace {
constexpr std::int64_t k_top_priority = std::numeric_limits<std::int64_t>::max();
// Past this many queued names from events, a directory is rescanned instead.
constexpr std::size_t k_max_pending = 8192;
constexpr std::int64_t k_busy_recheck_ns = 1'000'000'000;
// A task arrives by rename (IN_MOVED_TO) or by a writer's close
// (IN_CLOSE_WRITE); IN_CREATE is watched for new priority directories.
// Deletions are not watched: every task a spooler finishes is unlinked, and
// an event per unlink would cost the master a wake-up per task for nothing
// (a name that is gone is found gone when claimed). IN_EXCL_UNLINK keeps the
// close of a file already unlinked (a spooler closing the task it just
// removed) from reporting it as new.
constexpr std::uint32_t k_file_events = IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE;
constexpr std::uint32_t k_watch_mask = k_file_events | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR | IN_EXCL_UNLINK;

std::string relative(const std::string& priority, const std::string& name) {
  return priority.empty() ? name : priority + "/" + name;
}

// The sources_ key of a priority directory ("" for the top one): its number
// first, then its name, so that 7 and 007 both have a place, in name order.
std::pair<std::int64_t, std::string> key_of(const std::string& priority) {
  return {priority.empty() ? k_top_priority : std::stoll(priority), priority};
}
}  // namespace

struct queue_index::source {
  std::string priority;  // "" for the top directory
  unique_fd fd;
  int wd = -1;
  bool scanning = false;
  bool rescan_wanted = false;
  std::deque<std::string> pending;
  std::vector<char> buf = std::vector<char>(32 * 1024);
  std::size_t buf_pos = 0;
  std::size_t buf_len = 0;
};

queue_index::queue_index(queue_dir& dir, int inotify_fd) : dir_(dir), inotify_fd_(inotify_fd) {}

queue_index::~queue_index() {
  for (auto& [prio, s] : sources_) {
    if (s->wd >= 0) ::inotify_rm_watch(inotify_fd_, s->wd);
  }
}

result<void> queue_index::start() {
  source* top = add_source("");
  if (top == nullptr) return io_error("watch queue directory " + dir_.path(), errno);
  discover_priorities(*top);
  return {};
}

void queue_index::discover_priorities(source& top) {
  // A directory's link count is 2 + its subdirectories on ext4, xfs and
  // tmpfs: with failed/ the only one, there is nothing to look for and a
  // million-file backlog is not read twice. Elsewhere (btrfs says 1), read.
  struct stat st {};
  if (::fstat(top.fd.get(), &st) == 0 && st.st_nlink == 3) return;
  std::vector<char> buf(64 * 1024);
  for (;;) {
    const ssize_t n = ::getdents64(top.fd.get(), buf.data(), buf.size());
    if (n <= 0) break;
    for (std::size_t pos = 0; pos < static_cast<std::size_t>(n);) {
      const char* rec = buf.data() + pos;
      unsigned short reclen = 0;
      std::memcpy(&reclen, rec + offsetof(struct dirent64, d_reclen), sizeof(reclen));
      if (reclen == 0) break;
      pos += reclen;
      const auto type = static_cast<unsigned char>(rec[offsetof(struct dirent64, d_type)]);
      const char* name = rec + offsetof(struct dirent64, d_name);
      if ((type == DT_DIR || type == DT_UNKNOWN) && is_priority_name(name)) {
        struct stat sub {};
        if (type == DT_DIR || (::fstatat(top.fd.get(), name, &sub, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(sub.st_mode))) {
          add_source(name);
        }
      }
    }
  }
  ::lseek(top.fd.get(), 0, SEEK_SET);
}

queue_index::source* queue_index::add_source(const std::string& priority) {
  auto key = key_of(priority);
  if (auto it = sources_.find(key); it != sources_.end()) return it->second.get();
  auto s = std::make_unique<source>();
  s->priority = priority;
  const std::string path = priority.empty() ? dir_.path() : dir_.path() + "/" + priority;
  // Watch before the first scan so that no file lands between the two.
  s->wd = ::inotify_add_watch(inotify_fd_, path.c_str(), k_watch_mask);
  if (s->wd < 0) {
    spdlog::warn("queue {}: cannot watch {}: {}; it will be seen by rescans only", dir_.config().name, path,
                 errno_text(errno));
  }
  auto fd = open_at(dir_.fd(), priority.empty() ? "." : priority, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
  if (!fd) {
    spdlog::warn("queue {}: cannot read {}: {}", dir_.config().name, path, fd.err().message);
    if (s->wd >= 0) ::inotify_rm_watch(inotify_fd_, s->wd);
    return nullptr;
  }
  s->fd = std::move(*fd);
  s->scanning = true;
  source* raw = s.get();
  if (s->wd >= 0) sources_by_wd_[s->wd] = raw;
  sources_.emplace(std::move(key), std::move(s));
  sources_changed_ = true;
  return raw;
}

void queue_index::remove_source(source& s) {
  const auto key = key_of(s.priority);
  if (s.wd >= 0) sources_by_wd_.erase(s.wd);
  for (const auto& name : s.pending) known_.erase(relative(s.priority, name));
  sources_.erase(key);
}

void queue_index::read_batch(source& s) {
  if (s.buf_pos >= s.buf_len) {
    const ssize_t n = ::getdents64(s.fd.get(), s.buf.data(), s.buf.size());
    if (n <= 0) {
      if (n < 0) spdlog::warn("queue {}: reading {}: {}", dir_.config().name, dir_.path(), errno_text(errno));
      if (s.rescan_wanted) {
        s.rescan_wanted = false;
        ::lseek(s.fd.get(), 0, SEEK_SET);
      } else {
        s.scanning = false;
      }
      s.buf_pos = s.buf_len = 0;
      return;
    }
    s.buf_pos = 0;
    s.buf_len = static_cast<std::size_t>(n);
  }
  // Hand the names of this buffer to pending; a buffer holds a few hundred.
  while (s.buf_pos < s.buf_len) {
    const char* rec = s.buf.data() + s.buf_pos;
    unsigned short reclen = 0;
    std::memcpy(&reclen, rec + offsetof(struct dirent64, d_reclen), sizeof(reclen));
    if (reclen == 0 || s.buf_pos + reclen > s.buf_len) {
      s.buf_pos = s.buf_len;
      break;
    }
    const unsigned char type = static_cast<unsigned char>(rec[offsetof(struct dirent64, d_type)]);
    const char* name_ptr = rec + offsetof(struct dirent64, d_name);
    const std::string name(name_ptr, ::strnlen(name_ptr, reclen - offsetof(struct dirent64, d_name)));
    s.buf_pos += reclen;
    if (s.priority.empty() && (type == DT_DIR || type == DT_UNKNOWN) && is_priority_name(name)) {
      if (type == DT_UNKNOWN) {
        struct stat st {};
        if (::fstatat(s.fd.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISDIR(st.st_mode)) continue;
      }
      add_source(name);
      continue;
    }
    if (is_task_name(name)) {
      offer(s, name, false);
    } else if (queue_dir::remove_if_stale_temp(s.fd.get(), name.c_str(), k_stale_temp_age_ns, now_ns())) {
      spdlog::info("queue {}: removed {}, a temporary file a crash left behind", dir_.config().name,
                   relative(s.priority, name));
    }
  }
}

void queue_index::offer(source& s, const std::string& name, bool from_event) {
  const std::string rel = relative(s.priority, name);
  auto it = known_.find(rel);
  if (it != known_.end()) {
    if (from_event && it->second.st == state::waiting && it->second.incomplete) {
      it->second = entry{};
      s.pending.push_back(name);
      return;
    }
    if (it->second.st != state::ignored || !from_event) return;
    // An ignored task is offered again once the file changed.
    struct stat st {};
    if (::fstatat(s.fd.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      known_.erase(it);
      return;
    }
    if (identity_of(st) == it->second.identity) return;
    known_.erase(it);
  }
  if (from_event && s.pending.size() >= k_max_pending) {
    // Too many to remember: the scan will find it.
    if (s.scanning) s.rescan_wanted = true;
    else {
      ::lseek(s.fd.get(), 0, SEEK_SET);
      s.scanning = true;
    }
    return;
  }
  known_.emplace(rel, entry{});
  s.pending.push_back(name);
}

void queue_index::on_event(const inotify_event& e) {
  auto it = sources_by_wd_.find(e.wd);
  if (it == sources_by_wd_.end()) return;
  source& s = *it->second;
  if ((e.mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED)) != 0) {
    if (s.priority.empty()) {
      spdlog::error("queue {}: its directory {} was removed or moved: recreate it and send SIGHUP", dir_.config().name,
                    dir_.path());
      sources_by_wd_.erase(it);
      s.wd = -1;
    } else {
      remove_source(s);
    }
    return;
  }
  if (e.len == 0) return;
  const std::string name(e.name, ::strnlen(e.name, e.len));
  if ((e.mask & IN_ISDIR) != 0) {
    if (s.priority.empty() && is_priority_name(name) && (e.mask & (IN_CREATE | IN_MOVED_TO)) != 0) add_source(name);
    return;
  }
  if (!is_task_name(name)) return;
  // A file created in place is offered when its writer closes it.
  if ((e.mask & (IN_CLOSE_WRITE | IN_MOVED_TO)) == 0) return;
  offer(s, name, true);
}

void queue_index::rescan() {
  for (auto& [prio, s] : sources_) {
    if (s->scanning) {
      s->rescan_wanted = true;
    } else {
      ::lseek(s->fd.get(), 0, SEEK_SET);
      s->buf_pos = s->buf_len = 0;
      s->scanning = true;
    }
  }
}

std::optional<assignment> queue_index::next_due(std::int64_t now) {
  while (!waiting_.empty() && waiting_.top().first <= now) {
    auto [due, rel] = waiting_.top();
    waiting_.pop();
    auto it = known_.find(rel);
    if (it == known_.end() || it->second.st != state::waiting || it->second.due_ns != due) continue;
    auto ref = task_ref::from_relative(rel);
    auto src = ref ? sources_.find(key_of(ref->priority)) : sources_.end();
    if (!ref || src == sources_.end()) {
      known_.erase(it);
      continue;
    }
    it->second.st = state::pending;
    src->second->pending.push_back(ref->name);
  }
  // Lowest priority number first; a directory's scan is drained before the
  // next directory is looked at, so priorities hold across a backlog. A scan
  // that finds a new priority directory starts the walk again.
  for (;;) {
    sources_changed_ = false;
    for (auto& [prio, s] : sources_) {
      while (s->pending.empty() && s->scanning && !sources_changed_) read_batch(*s);
      if (sources_changed_) break;
      while (!s->pending.empty()) {
        std::string name = std::move(s->pending.front());
        s->pending.pop_front();
        const std::string rel = relative(s->priority, name);
        auto it = known_.find(rel);
        if (it == known_.end() || it->second.st != state::pending) continue;
        it->second.st = state::in_flight;
        return assignment{0, rel, it->second.owed_try};
      }
    }
    if (!sources_changed_) break;
  }
  return std::nullopt;
}

void queue_index::wait_until(const std::string& task, std::int64_t due, bool incomplete) {
  auto& e = known_[task];
  e.st = state::waiting;
  e.due_ns = due;
  e.incomplete = incomplete;
  waiting_.emplace(due, task);
}

void queue_index::on_report(const std::string& task, const report& r, std::int64_t now) {
  switch (r.result) {
    case outcome::done:
    case outcome::failed:
    case outcome::gone:
    case outcome::unparsable:
      known_.erase(task);
      break;
    case outcome::rescheduled:
      known_[task].owed_try.clear();
      wait_until(task, r.due_ns);
      break;
    case outcome::not_due:
      wait_until(task, r.due_ns);
      break;
    case outcome::incomplete:
      wait_until(task, r.due_ns, true);
      break;
    case outcome::busy:
    case outcome::io_error:
      wait_until(task, now + k_busy_recheck_ns);
      break;
    case outcome::ignored:
    case outcome::rejected: {
      auto& e = known_[task];
      e.st = state::ignored;
      e.identity = r.identity;
      break;
    }
  }
}

void queue_index::on_returned(const std::string& task) {
  auto ref = task_ref::from_relative(task);
  if (!ref) return;
  auto src = sources_.find(key_of(ref->priority));
  if (src == sources_.end()) {
    known_.erase(task);
    return;
  }
  known_[task].st = state::pending;
  src->second->pending.push_front(ref->name);
}

void queue_index::owe_try(const std::string& task, std::string why) {
  on_returned(task);
  auto it = known_.find(task);
  if (it != known_.end()) it->second.owed_try = std::move(why);
}

void queue_index::forget_ignored() {
  for (auto it = known_.begin(); it != known_.end();) {
    if (it->second.st == state::ignored) {
      it = known_.erase(it);
    } else {
      ++it;
    }
  }
  rescan();
}

queue_index::counts queue_index::count() const {
  counts c;
  for (const auto& [name, e] : known_) {
    switch (e.st) {
      case state::pending: ++c.pending; break;
      case state::in_flight: ++c.in_flight; break;
      case state::waiting: ++c.delayed; break;
      case state::ignored: ++c.ignored; break;
    }
  }
  for (const auto& [prio, s] : sources_) c.complete = c.complete && !s->scanning;
  return c;
}

std::int64_t queue_index::next_wakeup() {
  while (!waiting_.empty()) {
    const auto& [due, rel] = waiting_.top();
    auto it = known_.find(rel);
    if (it != known_.end() && it->second.st == state::waiting && it->second.due_ns == due) return due;
    waiting_.pop();
  }
  return std::numeric_limits<std::int64_t>::max();
}

}  // namespace spoold

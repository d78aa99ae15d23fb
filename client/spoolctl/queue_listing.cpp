#include "queue_listing.hpp"

#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <map>
#include <set>
#include <sstream>
#include <tuple>

#include "dir_entries.hpp"
#include "enqueue_task.hpp"
#include "spool_file.hpp"
#include "task_reader.hpp"

namespace spoold {

namespace {

constexpr std::size_t k_max_note_bytes = 64 * 1024;
constexpr std::size_t k_max_ignored_list_bytes = 16 * 1024 * 1024;

// The host's list of ignored tasks: "<relative name> <ino> <mtime ns> <size>"
// per line. A task is ignored while its file is still the version listed.
using ignored_versions = std::map<std::string, std::tuple<std::uint64_t, std::int64_t, std::int64_t>>;

ignored_versions read_ignored_list(int queue_fd, const std::string& dir) {
  ignored_versions out;
  auto text = read_note(queue_fd, std::string(k_ignored_list), dir + "/" + std::string(k_ignored_list),
                        k_max_ignored_list_bytes);
  if (!text) return out;
  std::istringstream lines(*text);
  std::string rel;
  std::uint64_t ino = 0;
  std::int64_t mtime = 0;
  std::int64_t size = 0;
  while (lines >> rel >> ino >> mtime >> size) out[rel] = {ino, mtime, size};
  return out;
}

struct scan_context {
  std::string dir;
  std::int64_t now_ns = 0;
  queue_listing* out = nullptr;
  ignored_versions ignored;
};

std::optional<std::int64_t> decimal_of(std::optional<std::string_view> text) {
  if (!text) return std::nullopt;
  std::int64_t v = 0;
  auto [p, ec] = std::from_chars(text->data(), text->data() + text->size(), v);
  if (ec != std::errc() || p != text->data() + text->size()) return std::nullopt;
  return v;
}

std::string join(const std::string& dir, const std::string& subdir, const std::string& name) {
  return subdir.empty() ? dir + "/" + name : dir + "/" + subdir + "/" + name;
}

// Describes dirfd/name, a candidate task. nullopt with a reason in skipped
// when it is not a regular file; nullopt alone when it vanished (taken).
std::optional<queue_entry> describe(scan_context& ctx, int dirfd, const std::string& subdir, const std::string& name,
                                    bool has_note) {
  const std::string path = join(ctx.dir, subdir, name);
  auto st = lstat_at(dirfd, name);
  if (!st) {
    if (st.err().code != ENOENT) ctx.out->skipped.push_back(path + ": " + st.err().message);
    return std::nullopt;
  }
  if (!S_ISREG(st->st_mode)) {
    ctx.out->skipped.push_back(path + ": " + (S_ISLNK(st->st_mode) ? "a symlink" : "not a regular file") +
                               ", not a task: left alone");
    return std::nullopt;
  }
  auto fd = open_task_file(dirfd, name, path, false);
  if (!fd) {
    if (fd.err().code != ENOENT) ctx.out->skipped.push_back(fd.err().message);
    return std::nullopt;
  }
  auto locked = held_by_another(fd->get(), path);
  if (!locked) ctx.out->skipped.push_back(locked.err().message);
  auto file = read_task_head(fd->get(), path, 0);
  if (!file) {
    ctx.out->skipped.push_back(file.err().message);
    return std::nullopt;
  }

  queue_entry e;
  e.id = name;
  e.subdir = subdir;
  if (is_priority_name(subdir)) e.priority = static_cast<unsigned>(std::stoul(subdir));
  e.mtime_ns = mtime_ns(file->st);
  e.due_ns = e.mtime_ns;
  e.size = static_cast<std::uint64_t>(file->st.st_size);
  e.has_note = has_note;
  const parse_result parsed = parse_spool_file(file->head);
  if (parsed.ok()) {
    e.parsed = true;
    e.attempt = attempt_of(*parsed.task);
    if (auto at_key = parsed.task->arg("at")) {
      if (auto at = at_key_ns(*at_key); at && *at > e.due_ns) e.due_ns = *at;
    }
    if (auto err = parsed.task->arg(k_key_error)) e.error = std::string(*err);
    e.failed_at = decimal_of(parsed.task->arg(k_key_failed_at));
    // In failed/ the priority is only in the key; retry puts it back in its subdirectory.
    if (auto p = parsed.task->arg("priority"); subdir == k_failed_dir && p && is_priority_name(*p)) {
      e.priority = static_cast<unsigned>(std::stoul(std::string(*p)));
    }
  } else {
    e.parse_problem = parsed.failure.reason;
    e.being_written = subdir != k_failed_dir && parsed.failure.problem == parse_problem::incomplete &&
                      ctx.now_ns - e.mtime_ns < k_write_grace_ns;
  }
  if (has_note) {
    const std::string note = name + std::string(k_note_suffix);
    if (auto text = read_note(dirfd, note, join(ctx.dir, subdir, note), k_max_note_bytes)) {
      e.error = std::move(*text);
    } else {
      e.error = "(cannot read " + note + ": " + text.err().message + ")";
    }
  }
  e.locked = locked && *locked;
  if (subdir == k_failed_dir) {
    e.state = task_state::failed;
  } else if (e.locked) {
    e.state = task_state::in_flight;
  } else if (auto it = ctx.ignored.find(subdir.empty() ? name : subdir + "/" + name);
             it != ctx.ignored.end() &&
             it->second == std::make_tuple(static_cast<std::uint64_t>(file->st.st_ino), e.mtime_ns,
                                           static_cast<std::int64_t>(file->st.st_size))) {
    e.state = task_state::ignored;
  } else {
    e.state = e.due_ns > ctx.now_ns ? task_state::delayed : task_state::pending;
  }
  return e;
}

void scan_tasks(scan_context& ctx, int dirfd, const std::string& subdir, const std::vector<std::string>& names) {
  const bool failed = subdir == k_failed_dir;
  const std::set<std::string> present(names.begin(), names.end());
  for (const auto& name : names) {
    if (!is_task_name(name)) continue;
    if (is_note_name(name)) {
      const std::string task = name.substr(0, name.size() - k_note_suffix.size());
      if (failed && present.count(task) == 0) {
        ctx.out->skipped.push_back(join(ctx.dir, subdir, name) + ": an error note without its task " + task);
      }
      continue;
    }
    const bool has_note = failed && present.count(name + std::string(k_note_suffix)) != 0;
    if (auto e = describe(ctx, dirfd, subdir, name, has_note)) ctx.out->entries.push_back(std::move(*e));
  }
}

result<void> scan_subdir(scan_context& ctx, int queue_fd, const std::string& subdir) {
  auto fd = open_queue_subdir(queue_fd, ctx.dir, subdir);
  if (!fd) {
    if (fd.err().code == ENOENT) return {};
    return fd.err();
  }
  auto names = list_names(fd->get(), ctx.dir + "/" + subdir);
  if (!names) return names.err();
  scan_tasks(ctx, fd->get(), subdir, *names);
  return {};
}

// The order a host takes tasks in: numeric priorities first, lowest first,
// then the top directory; oldest first within each.
bool runs_before(const queue_entry& a, const queue_entry& b) {
  if (a.state != b.state) return a.state < b.state;
  switch (a.state) {
    case task_state::in_flight:
      if (a.mtime_ns != b.mtime_ns) return a.mtime_ns < b.mtime_ns;
      break;
    case task_state::pending: {
      const auto pa = a.priority.value_or(~0u);
      const auto pb = b.priority.value_or(~0u);
      if (pa != pb) return pa < pb;
      if (a.priority.has_value() != b.priority.has_value()) return a.priority.has_value();
      if (a.mtime_ns != b.mtime_ns) return a.mtime_ns < b.mtime_ns;
      break;
    }
    case task_state::delayed:
      if (a.due_ns != b.due_ns) return a.due_ns < b.due_ns;
      break;
    case task_state::ignored:
      if (a.mtime_ns != b.mtime_ns) return a.mtime_ns < b.mtime_ns;
      break;
    case task_state::failed: {
      const auto fa = a.failed_at.value_or(a.mtime_ns / 1'000'000'000);
      const auto fb = b.failed_at.value_or(b.mtime_ns / 1'000'000'000);
      if (fa != fb) return fa < fb;
      break;
    }
  }
  return a.id < b.id;
}

}  // namespace

const char* state_name(task_state state) {
  switch (state) {
    case task_state::in_flight: return "in_flight";
    case task_state::pending: return "pending";
    case task_state::delayed: return "delayed";
    case task_state::ignored: return "ignored";
    case task_state::failed: return "failed";
  }
  return "unknown";
}

std::string entry_path(const std::string& dir, const queue_entry& entry) { return join(dir, entry.subdir, entry.id); }

bool is_note_name(std::string_view name) {
  return name.size() > k_note_suffix.size() && name.substr(name.size() - k_note_suffix.size()) == k_note_suffix;
}

result<unique_fd> open_queue_dir(const std::string& dir) {
  auto fd = open_at(AT_FDCWD, dir, O_RDONLY | O_DIRECTORY);
  if (!fd) return make_error("cannot open the queue directory " + dir + ": " + errno_text(fd.err().code), fd.err().code);
  return fd;
}

result<unique_fd> open_queue_subdir(int queue_fd, const std::string& dir, const std::string& subdir) {
  auto fd = open_at(queue_fd, subdir.empty() ? std::string(".") : subdir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
  if (!fd) {
    const std::string path = dir + "/" + subdir;
    if (fd.err().code == ELOOP || fd.err().code == ENOTDIR) {
      return make_error(path + " is not a directory (a symlink or a file): left alone", fd.err().code);
    }
    return make_error("cannot open " + path + ": " + errno_text(fd.err().code), fd.err().code);
  }
  return fd;
}

result<queue_listing> list_queue(const std::string& dir, std::int64_t now_ns) {
  queue_listing out;
  auto queue_fd = open_queue_dir(dir);
  if (!queue_fd) {
    if (queue_fd.err().code == ENOENT) {
      out.dir_missing = true;
      return out;
    }
    return queue_fd.err();
  }
  auto names = list_names(queue_fd->get(), dir);
  if (!names) return names.err();
  scan_context ctx{dir, now_ns, &out, read_ignored_list(queue_fd->get(), dir)};
  scan_tasks(ctx, queue_fd->get(), "", *names);
  for (const auto& name : *names) {
    if (!is_priority_name(name) && name != k_failed_dir) continue;
    auto scanned = scan_subdir(ctx, queue_fd->get(), name);
    if (!scanned) out.skipped.push_back(scanned.err().message);
  }
  std::sort(out.entries.begin(), out.entries.end(), runs_before);
  return out;
}

result<std::optional<queue_entry>> find_task(const std::string& dir, const std::string& id, std::int64_t now_ns) {
  if (!is_task_name(id)) return make_error("'" + id + "' is not a task id", EINVAL);
  if (is_note_name(id)) {
    return make_error("'" + id + "' is the error note of a failed task, not a task: use the id " +
                          id.substr(0, id.size() - k_note_suffix.size()),
                      EINVAL);
  }
  queue_listing scratch;
  auto queue_fd = open_queue_dir(dir);
  if (!queue_fd) return queue_fd.err();
  scan_context ctx{dir, now_ns, &scratch, read_ignored_list(queue_fd->get(), dir)};
  auto names = list_names(queue_fd->get(), dir);
  if (!names) return names.err();

  std::vector<std::string> subdirs{""};
  for (const auto& name : *names) {
    if (is_priority_name(name)) subdirs.push_back(name);
  }
  subdirs.emplace_back(k_failed_dir);
  for (const auto& subdir : subdirs) {
    unique_fd sub_fd;
    int fd = queue_fd->get();
    if (!subdir.empty()) {
      auto opened = open_queue_subdir(queue_fd->get(), dir, subdir);
      if (!opened) continue;
      sub_fd = std::move(*opened);
      fd = sub_fd.get();
    }
    if (!lstat_at(fd, id).ok()) continue;
    const bool has_note =
        subdir == k_failed_dir && lstat_at(fd, id + std::string(k_note_suffix)).ok();
    if (auto e = describe(ctx, fd, subdir, id, has_note)) return std::optional<queue_entry>(std::move(*e));
    if (!scratch.skipped.empty()) return make_error(scratch.skipped.back(), EINVAL);
  }
  return std::optional<queue_entry>();
}

}  // namespace spoold

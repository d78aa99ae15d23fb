#include "enqueue_task.hpp"

#include <fcntl.h>

#include <algorithm>
#include <cerrno>
#include <charconv>

#include "posix.hpp"

namespace spoold {

namespace {

constexpr std::string_view k_key_at = "at";
constexpr std::string_view k_key_priority = "priority";

bool has_key(const std::vector<owned_arg>& args, std::string_view key) {
  for (const auto& a : args) {
    if (a.key == key) return true;
  }
  return false;
}

// The last value of key, as uWSGI's dict would keep it.
const std::string* last_value(const std::vector<owned_arg>& args, std::string_view key) {
  for (auto it = args.rbegin(); it != args.rend(); ++it) {
    if (it->key == key) return &it->value;
  }
  return nullptr;
}

error with_path(const error& e, const std::string& path) {
  return make_error(e.message + " (in " + path + ")", e.code);
}

}  // namespace

std::vector<owned_arg> task_args(const task_request& request) {
  std::vector<owned_arg> args = request.args;
  if (request.at_ns) args.push_back({std::string(k_key_at), std::to_string(*request.at_ns / 1'000'000'000)});
  if (request.priority) args.push_back({std::string(k_key_priority), std::to_string(*request.priority)});
  return args;
}

std::optional<std::int64_t> task_due_ns(const task_request& request) {
  if (request.at_ns) return request.at_ns;
  const std::string* at = last_value(request.args, k_key_at);
  if (at == nullptr) return std::nullopt;
  return at_key_ns(*at);
}

std::optional<std::string> task_priority(const task_request& request) {
  if (request.priority) return std::to_string(*request.priority);
  const std::string* p = last_value(request.args, k_key_priority);
  if (p != nullptr && is_priority_name(*p)) return *p;
  return std::nullopt;
}

std::optional<std::int64_t> at_key_ns(std::string_view value) {
  // at_of() accepts seconds up to year 9999, whose nanoseconds do not fit
  // an int64: check the whole seconds against our range first.
  std::int64_t whole = 0;
  const std::size_t digits = std::min(value.find('.'), value.size());
  auto [end, ec] = std::from_chars(value.data(), value.data() + digits, whole);
  if (ec != std::errc() || end != value.data() + digits || whole > k_max_at_seconds) return std::nullopt;
  spool_view view;
  view.args.push_back({k_key_at, value});
  return at_of(view);
}

std::size_t args_block_size(const std::vector<owned_arg>& args) {
  std::size_t size = 0;
  for (const auto& a : args) size += 4 + a.key.size() + a.value.size();
  return size;
}

result<void> check_task(const task_request& request) {
  for (std::size_t i = 0; i < request.args.size(); ++i) {
    const auto& a = request.args[i];
    if (a.key.empty()) {
      return make_error("argument " + std::to_string(i + 1) + " has an empty key: the uWSGI format needs at least one byte",
                        EINVAL);
    }
  }
  if (request.at_ns) {
    if (*request.at_ns < 0 || *request.at_ns / 1'000'000'000 > k_max_at_seconds) {
      return make_error("the due time " + std::to_string(*request.at_ns) +
                            " ns is out of range: give unix seconds between 0 and " + std::to_string(k_max_at_seconds),
                        EINVAL);
    }
    if (has_key(request.args, k_key_at)) {
      return make_error("the due time is given twice, as an option and as the 'at' key: give one of them", EINVAL);
    }
  }
  if (request.priority) {
    if (*request.priority > k_max_priority) {
      return make_error("priority " + std::to_string(*request.priority) + " is over the limit of " +
                            std::to_string(k_max_priority) + " (at most 9 digits)",
                        EINVAL);
    }
    if (has_key(request.args, k_key_priority)) {
      return make_error("the priority is given twice, as an option and as the 'priority' key: give one of them", EINVAL);
    }
  }
  const std::size_t size = args_block_size(task_args(request));
  if (size > k_max_args_size) {
    return make_error("the arguments take " + std::to_string(size) + " bytes, over the " +
                          std::to_string(k_max_args_size) +
                          " bytes the uWSGI format allows: put large values in the body",
                      E2BIG);
  }
  return {};
}

result<std::string> enqueue_task(const std::string& queue_dir, const task_request& request, const std::string& id) {
  if (!is_task_name(id)) {
    return make_error("'" + id + "' is not a task id: it must start with " + std::string(k_task_prefix) +
                          " and contain no '/'",
                      EINVAL);
  }
  if (queue_dir.empty()) return make_error("the queue directory is an empty path", EINVAL);
  if (auto checked = check_task(request); !checked) return checked.err();
  auto bytes = encode_spool_file(task_args(request), request.body);
  if (!bytes) return make_error(bytes.err().message, E2BIG);

  if (auto made = make_dirs(queue_dir, static_cast<mode_t>(request.dir_mode)); !made) {
    return make_error("cannot create the queue directory " + queue_dir + ": " + made.err().message, made.err().code);
  }
  auto queue_fd = open_at(AT_FDCWD, queue_dir, O_RDONLY | O_DIRECTORY);
  if (!queue_fd) return queue_fd.err();

  std::string target_dir = queue_dir;
  unique_fd subdir_fd;
  if (auto priority_dir = task_priority(request)) {
    target_dir = queue_dir + "/" + *priority_dir;
    const bool existed = lstat_at(queue_fd->get(), *priority_dir).ok();
    if (!existed) {
      if (auto made = mkdir_at(queue_fd->get(), *priority_dir, static_cast<mode_t>(request.dir_mode)); !made) {
        return with_path(made.err(), queue_dir);
      }
    }
    auto fd = open_at(queue_fd->get(), *priority_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
    if (!fd) {
      return make_error(fd.err().message + " in " + queue_dir +
                            ": the priority subdirectory must be a directory, not a file or a symlink",
                        fd.err().code);
    }
    subdir_fd = std::move(*fd);
    // The new directory entry must survive a crash too, or the task with it.
    if (!existed && request.sync) {
      if (auto synced = fsync_fd(queue_fd->get(), queue_dir); !synced) return synced.err();
    }
  }

  write_options options;
  options.mtime_ns = task_due_ns(request);
  options.sync = request.sync;
  options.mode = request.file_mode;
  options.new_name = true;
  const int target_fd = subdir_fd.valid() ? subdir_fd.get() : queue_fd->get();
  if (auto written = write_file_atomically(target_fd, target_dir, id, *bytes, options); !written) {
    return written.err();
  }
  return target_dir + "/" + id;
}

}  // namespace spoold

// spoolctl enqueue: one task from the command line, written the way every
// native producer writes it (client/producer).
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <iostream>
#include <limits>
#include <memory>

#include "commands.hpp"
#include "enqueue_task.hpp"
#include "posix.hpp"

namespace spoold {

namespace {

struct file_closer {
  void operator()(std::FILE* f) const noexcept { std::fclose(f); }
};

result<std::string> read_body_file(const std::string& path) {
  std::unique_ptr<std::FILE, file_closer> owned;
  std::FILE* in = stdin;
  if (path != "-") {
    owned.reset(std::fopen(path.c_str(), "rbe"));
    if (!owned) return io_error("cannot read the body file " + path, errno);
    in = owned.get();
  }
  std::string body;
  char buf[65536];
  for (;;) {
    const std::size_t n = std::fread(buf, 1, sizeof buf, in);
    body.append(buf, n);
    if (n < sizeof buf) break;
  }
  if (std::ferror(in) != 0) {
    return io_error("cannot read the body file " + (path == "-" ? std::string("(standard input)") : path), errno);
  }
  return body;
}

}  // namespace

int make_request(const enqueue_options& options, task_request& request) {
  request.args = options.args;
  request.priority = options.priority;
  request.sync = options.sync;
  if (options.body) {
    request.body = *options.body;
  } else if (options.body_file) {
    auto body = read_body_file(*options.body_file);
    if (!body) {
      report(body.err().message);
      return exit_failure;
    }
    request.body = std::move(*body);
  }
  if (options.at_ns) {
    request.at_ns = options.at_ns;
  } else if (options.delay_ms) {
    const std::int64_t now = now_ns();
    const std::int64_t limit = (std::numeric_limits<std::int64_t>::max() - now) / 1'000'000;
    if (*options.delay_ms > limit) {
      report("--delay " + std::to_string(*options.delay_ms) + "ms is too far in the future");
      return exit_usage;
    }
    request.at_ns = now + *options.delay_ms * 1'000'000;
  }

  if (auto checked = check_task(request); !checked) {
    if (checked.err().code == E2BIG) {
      report(checked.err().message + " with --body TEXT or --body-file FILE");
    } else {
      report(checked.err().message);
    }
    return exit_usage;
  }
  return exit_ok;
}

int run_enqueue(const queue_target& queue, const enqueue_options& options) {
  struct stat st {};
  if (!options.create_dir && ::stat(queue.dir.c_str(), &st) != 0 && errno == ENOENT) {
    report("the directory " + queue.dir +
           " does not exist: check the path, or add --create-dir to create it (mode 0700)");
    return exit_usage;
  }
  task_request request;
  if (int code = make_request(options, request); code != exit_ok) return code;
  request.file_mode = queue.file_mode;
  request.dir_mode = queue.dir_mode;
  const std::string id = make_task_name();
  auto written = enqueue_task(queue.dir, request, id);
  if (!written) {
    report("cannot enqueue into " + queue.label + ": " + written.err().message);
    return exit_failure;
  }
  std::cout << id << '\n' << std::flush;
  return std::cout ? exit_ok : exit_failure;
}

}  // namespace spoold

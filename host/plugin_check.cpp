#include "plugin_check.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>

#include "plugin_loader.hpp"
#include "process_status.hpp"
#include "signals.hpp"
#include "spooler_process.hpp"

namespace spoold {

namespace {
constexpr std::int64_t k_ms = 1'000'000;
// A queue with no init_timeout still gets a bound at --check.
constexpr std::int64_t k_default_queue_check_ns = 30'000 * k_ms;

std::int64_t queue_check_ns(const queue_config& q) {
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(q.init_timeout).count();
  return ns > 0 ? ns : k_default_queue_check_ns;
}

bool plugins_exist(const config& c, const queue_config& q) {
  return std::all_of(q.plugins.begin(), q.plugins.end(), [&](const std::string& p) {
    struct stat st {};
    return ::stat(plugin_path(c.host, p).c_str(), &st) == 0;
  });
}

std::string one_line(std::string text) {
  std::replace(text.begin(), text.end(), '\n', ' ');
  return text;
}

void write_line(int fd, const std::string& line) {
  const std::string text = line + "\n";
  (void)write_all(fd, text.data(), text.size(), "check pipe");
}

void drop_plugin_log(void*, std::int32_t, const char*, std::size_t) {}

// In a grandchild: one queue's chain, as a spooler would start it. Writes
// "stage <plugin> <load|init>" before each step, so that its parent can
// name the plugin and the step that crashed or hung, and "problem <text>"
// for a refusal.
[[noreturn]] void start_chain(const config& c, const queue_config& q, check_depth depth, int out_fd) {
  if (!c.host.base_dir.empty() && ::chdir(c.host.base_dir.c_str()) != 0) {
    write_line(out_fd, "problem " + io_error("chdir " + c.host.base_dir, errno).message);
    ::_exit(0);
  }
  export_queue_to_plugins(q);  // as in a spooler
  std::vector<std::unique_ptr<loaded_plugin>> chain;
  for (const auto& name : q.plugins) {
    write_line(out_fd, "stage " + name + " load");
    auto loaded = load_plugin(c.host, name);
    if (!loaded) {
      write_line(out_fd, "problem queue '" + q.name + "': " + one_line(loaded.err().message));
      ::_exit(0);
    }
    if (depth == check_depth::load) continue;
    write_line(out_fd, "stage " + name + " init");
    if (auto init = (*loaded)->init(q.name, q.options, nullptr, &drop_plugin_log, q.plugins.size()); !init) {
      write_line(out_fd, "problem queue '" + q.name + "': " + one_line(init.err().message));
      ::_exit(0);
    }
    chain.push_back(std::move(*loaded));
  }
  // Plugins stay loaded: _exit, no destructors, no dlclose (a plugin's
  // thread may still run).
  ::_exit(0);
}

// In the check process: runs one queue's chain in a grandchild and relays
// its problems, or says which plugin crashed or hung and in which step.
void check_queue(const config& c, const queue_config& q, check_depth depth, int out_fd) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    write_line(out_fd, "problem queue '" + q.name + "': " + io_error("pipe for the plugin check", errno).message);
    return;
  }
  unique_fd read_end(fds[0]);
  unique_fd write_end(fds[1]);
  const pid_t pid = ::fork();
  if (pid < 0) {
    write_line(out_fd, "problem queue '" + q.name + "': " + io_error("fork for the plugin check", errno).message);
    return;
  }
  if (pid == 0) {
    read_end.reset();
    try {
      start_chain(c, q, depth, write_end.get());
    } catch (...) {
      ::_exit(70);
    }
  }
  write_end.reset();
  std::string output;
  const std::int64_t deadline = monotonic_ns() + queue_check_ns(q);
  bool timed_out = false;
  for (;;) {
    const std::int64_t left_ms = (deadline - monotonic_ns()) / k_ms;
    if (left_ms <= 0) {
      timed_out = true;
      break;
    }
    pollfd p{read_end.get(), POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left_ms)) <= 0) continue;
    char buf[4096];
    const ssize_t n = ::read(read_end.get(), buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    output.append(buf, static_cast<std::size_t>(n));
  }
  if (timed_out) ::kill(pid, SIGKILL);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  std::string plugin;
  std::string step;
  bool refused = false;
  std::size_t pos = 0;
  while (pos < output.size()) {
    std::size_t nl = output.find('\n', pos);
    if (nl == std::string::npos) break;  // a line cut short by a crash
    const std::string line = output.substr(pos, nl - pos);
    pos = nl + 1;
    if (line.rfind("stage ", 0) == 0) {
      const std::string rest = line.substr(6);
      const auto space = rest.rfind(' ');
      plugin = rest.substr(0, space);
      step = space == std::string::npos ? "" : rest.substr(space + 1);
    } else if (line.rfind("problem ", 0) == 0) {
      refused = true;
      write_line(out_fd, line);
    }
  }
  if (refused) return;
  const std::string who = "queue '" + q.name + "': plugin '" + plugin + "' (" + plugin_path(c.host, plugin) + ")";
  const std::string what = step == "init" ? "init()" : "loading";
  if (timed_out) {
    write_line(out_fd, "problem " + who + ": " + what + " did not finish within " +
                           format_duration(duration(queue_check_ns(q) / k_ms)) + " (init_timeout): it hangs");
  } else if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
    write_line(out_fd, "problem " + who + " crashed the check process in " + what + ": " + describe_exit(status));
  }
}

[[noreturn]] void check_in_child(const config& c, check_depth depth, int out_fd) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  for (const auto& q : c.queues) {
    if (!q.plugins.empty() && plugins_exist(c, q)) check_queue(c, q, depth, out_fd);
  }
  write_line(out_fd, "done");
  ::_exit(0);
}
}  // namespace

result<plugin_check> plugin_check::start(const config& c, check_depth depth) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return io_error("pipe for the plugin check", errno);
  unique_fd read_end(fds[0]);
  unique_fd write_end(fds[1]);
  std::int64_t budget = 5'000 * k_ms;
  for (const auto& q : c.queues) budget += queue_check_ns(q);
  const pid_t pid = ::fork();
  if (pid < 0) return io_error("fork for the plugin check", errno);
  if (pid == 0) {
    // Nothing of the master's may run or stay open here: its handlers write
    // to its self-pipe, and a spooler's socket held here would hide the
    // master's exit from that spooler.
    reset_signals_after_fork();
    read_end.reset();
    if (write_end.get() != 3 && ::dup2(write_end.get(), 3) < 0) ::_exit(71);
    ::close_range(4, ~0U, 0);
    try {
      check_in_child(c, depth, 3);
    } catch (...) {
      ::_exit(70);
    }
  }
  write_end.reset();
  if (::fcntl(read_end.get(), F_SETFL, O_NONBLOCK) != 0) {
    ::kill(pid, SIGKILL);
    return io_error("make the plugin check's pipe non-blocking", errno);
  }
  plugin_check check;
  check.pid_ = pid;
  check.out_ = std::move(read_end);
  check.deadline_ = monotonic_ns() + budget;
  return check;
}

bool plugin_check::read_output() {
  for (;;) {
    char buf[4096];
    const ssize_t n = ::read(out_.get(), buf, sizeof(buf));
    if (n > 0) {
      output_.append(buf, static_cast<std::size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    return n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK);
  }
}

void plugin_check::kill_it() {
  killed_ = true;
  ::kill(pid_, SIGKILL);
}

std::vector<std::string> plugin_check::problems(int wait_status) const {
  std::vector<std::string> out;
  bool done = false;
  std::size_t pos = 0;
  while (pos < output_.size()) {
    std::size_t nl = output_.find('\n', pos);
    if (nl == std::string::npos) break;
    const std::string line = output_.substr(pos, nl - pos);
    pos = nl + 1;
    if (line.rfind("problem ", 0) == 0) out.push_back(line.substr(8));
    else if (line == "done") done = true;
  }
  if (!done) {
    out.push_back(killed_ ? std::string("the plugin check did not finish in time") :
                            "the plugin check process ended early: " + describe_exit(wait_status));
  }
  return out;
}

std::vector<std::string> check_plugins_in_child(const config& c, check_depth depth) {
  auto check = plugin_check::start(c, depth);
  if (!check) return {check.err().message};
  for (;;) {
    const std::int64_t left_ms = (check->deadline() - monotonic_ns()) / k_ms;
    if (left_ms <= 0) {
      check->kill_it();
      break;
    }
    pollfd p{check->fd(), POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left_ms)) < 0 && errno != EINTR) break;
    if (check->read_output()) break;
  }
  int status = 0;
  while (::waitpid(check->pid(), &status, 0) < 0 && errno == EINTR) {
  }
  return check->problems(status);
}

}  // namespace spoold

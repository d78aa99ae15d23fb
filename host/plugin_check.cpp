#include "plugin_check.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <set>

#include "plugin_loader.hpp"
#include "posix.hpp"
#include "process_status.hpp"

namespace spoold {

namespace {
constexpr int k_check_timeout_ms = 30'000;

// In the child: one line "loading <name>" before each plugin, so the parent
// can name the plugin that crashed, and "problem <text>" for each refusal.
[[noreturn]] void check_in_child(const config& c, int out_fd) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  std::set<std::string> seen;
  for (const auto& q : c.queues) {
    for (const auto& name : q.plugins) {
      if (!seen.insert(name).second) continue;
      std::string line = "loading " + name + "\n";
      (void)write_all(out_fd, line.data(), line.size(), "check pipe");
      auto loaded = load_plugin(c.host, name);
      if (!loaded) {
        std::string msg = loaded.err().message;
        for (auto& ch : msg) {
          if (ch == '\n') ch = ' ';
        }
        line = "problem " + msg + "\n";
        (void)write_all(out_fd, line.data(), line.size(), "check pipe");
      }
    }
  }
  (void)write_all(out_fd, "done\n", 5, "check pipe");
  ::_exit(0);
}
}  // namespace

std::vector<std::string> check_plugins_in_child(const config& c) {
  std::vector<std::string> problems;
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return {io_error("pipe for the plugin check", errno).message};
  unique_fd read_end(fds[0]);
  unique_fd write_end(fds[1]);
  const pid_t pid = ::fork();
  if (pid < 0) return {io_error("fork for the plugin check", errno).message};
  if (pid == 0) {
    read_end.reset();
    check_in_child(c, write_end.get());
  }
  write_end.reset();
  std::string output;
  const std::int64_t deadline = monotonic_ns() + std::int64_t{k_check_timeout_ms} * 1'000'000;
  bool timed_out = false;
  for (;;) {
    const std::int64_t left_ms = (deadline - monotonic_ns()) / 1'000'000;
    if (left_ms <= 0) {
      timed_out = true;
      break;
    }
    pollfd p{read_end.get(), POLLIN, 0};
    const int ready = ::poll(&p, 1, static_cast<int>(left_ms));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) continue;
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
  std::string last_loading;
  bool done = false;
  std::size_t pos = 0;
  while (pos < output.size()) {
    std::size_t nl = output.find('\n', pos);
    if (nl == std::string::npos) nl = output.size();
    const std::string line = output.substr(pos, nl - pos);
    pos = nl + 1;
    if (line.rfind("loading ", 0) == 0) last_loading = line.substr(8);
    else if (line.rfind("problem ", 0) == 0) problems.push_back(line.substr(8));
    else if (line == "done") done = true;
  }
  if (!done) {
    const std::string file = last_loading.empty() ? std::string("?") : plugin_path(c.host, last_loading);
    if (timed_out) {
      problems.push_back("plugin '" + last_loading + "' (" + file + ") did not finish loading within 30s: it hangs at load time");
    } else {
      problems.push_back("plugin '" + last_loading + "' (" + file + ") crashed the check process while loading: " +
                         describe_exit(status));
    }
  }
  return problems;
}

}  // namespace spoold

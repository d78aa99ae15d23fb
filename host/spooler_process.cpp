#include "spooler_process.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdlib>

#include <spoold/plugin.hpp>

#include "logging.hpp"
#include "protocol.hpp"
#include "sandbox.hpp"
#include "signals.hpp"
#include "spooler.hpp"

namespace spoold {

namespace {

volatile sig_atomic_t g_terminate = 0;

void on_terminate(int) { g_terminate = 1; }

}  // namespace

bool termination_requested() noexcept { return g_terminate != 0; }

void set_parent_death_signal(pid_t master_pid) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != master_pid) ::_exit(k_spooler_exit_ok);  // the master died before prctl
}

// The order after fork: signals first (so nothing inherited from the master
// runs here), then the parent-death signal, then everything else.
void reset_spooler_process(pid_t master_pid) {
  reset_signals_after_fork();
  set_fault_role("spooler");
  // A terminal's Ctrl-C reaches the whole process group: the master decides
  // how spoolers stop, so they ignore it.
  ::signal(SIGINT, SIG_IGN);
  ::signal(SIGHUP, SIG_IGN);
  ::signal(SIGPIPE, SIG_IGN);
  // `kill -USR1` sent to the whole group asks the master for a status line.
  ::signal(SIGUSR1, SIG_IGN);
  ::signal(SIGUSR2, SIG_IGN);
  struct sigaction sa {};
  sa.sa_handler = on_terminate;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: a blocked recv() returns EINTR
  ::sigaction(SIGTERM, &sa, nullptr);
  // systemd's notifications and watchdog are the master's: a plugin, or a
  // command it runs, must not speak for the service.
  ::unsetenv("NOTIFY_SOCKET");
  ::unsetenv("WATCHDOG_USEC");
  ::unsetenv("WATCHDOG_PID");
  set_parent_death_signal(master_pid);
}

void export_queue_to_plugins(const queue_config& queue) {
  // Only the variables of this queue's kind: one inherited from the
  // master's own environment must not send tasks elsewhere.
  if (queue.redis) {
    ::unsetenv("SPOOLD_QUEUE_DIR");
    ::setenv("SPOOLD_QUEUE_REDIS", (queue.redis->stream + " at " + queue.redis->url.display()).c_str(), 1);
    // The url as written, password included, so that a plugin connects as
    // the spooler does: its code already runs with the queue's access to
    // the server.
    ::setenv("SPOOLD_QUEUE_REDIS_URL", queue.redis->url_text.c_str(), 1);
    ::setenv("SPOOLD_QUEUE_REDIS_STREAM", queue.redis->stream.c_str(), 1);
  } else {
    ::unsetenv("SPOOLD_QUEUE_REDIS");
    ::unsetenv("SPOOLD_QUEUE_REDIS_URL");
    ::unsetenv("SPOOLD_QUEUE_REDIS_STREAM");
    ::setenv("SPOOLD_QUEUE_DIR", queue.dir.c_str(), 1);
  }
}

bool apply_queue_nice(const queue_config& queue) {
  if (!queue.nice || ::setpriority(PRIO_PROCESS, 0, *queue.nice) == 0) return true;
  const int err = errno;
  spdlog::error("spooler for queue {}: cannot set nice = {}: {}{}", queue.name, *queue.nice, errno_text(err),
                err == EACCES || err == EPERM
                    ? " (a niceness below the master's needs CAP_SYS_NICE: run as root, or raise LimitNICE= in the unit)"
                    : "");
  return false;
}

int enter_sandbox_and_report_ready(const queue_config& queue, const host_config& host, pid_t master_pid,
                                   int socket_fd) {
  // After init() (which may open its log file or connect its database as
  // the host's user), before the first task.
  if (auto sandboxed = apply_sandbox(queue, host, master_pid); !sandboxed) {
    spdlog::error("spooler for queue {}: cannot apply the queue's sandbox: {}; no task runs outside it", queue.name,
                  sandboxed.err().message);
    return k_spooler_exit_sandbox;
  }
  const report ready{k_ready_seq, outcome::done, 0, {}, -1};
  if (auto sent = send_message(socket_fd, &ready, sizeof(ready), 0, "the master"); !sent) {
    spdlog::error("spooler for queue {}: {}", queue.name, sent.err().message);
    return k_spooler_exit_socket;
  }
  return 0;
}

void plugin_log(void* context, std::int32_t level, const char* message, std::size_t size) {
  const auto* c = static_cast<const plugin_log_context*>(context);
  const std::string_view text(message, size);
  const auto lvl = level >= SPOOLD_LOG_ERROR  ? spdlog::level::err
                   : level == SPOOLD_LOG_WARN ? spdlog::level::warn
                   : level == SPOOLD_LOG_INFO ? spdlog::level::info
                                              : spdlog::level::debug;
  log_event(lvl, log_fields::about_task("", c->queue).with_plugin(c->plugin), text);
}

resident_set_reader::resident_set_reader() : statm_(::open("/proc/self/statm", O_RDONLY | O_CLOEXEC)) {}

std::optional<std::uint64_t> resident_set_reader::bytes() const {
  if (!statm_.valid()) return std::nullopt;
  char buf[128];
  const ssize_t n = ::pread(statm_.get(), buf, sizeof(buf) - 1, 0);
  if (n <= 0) return std::nullopt;
  // "size resident shared ...": the second field, in pages.
  const char* p = buf;
  const char* end = buf + n;
  std::uint64_t size = 0;
  std::uint64_t resident = 0;
  auto r = std::from_chars(p, end, size);
  if (r.ec != std::errc{} || r.ptr == end || *r.ptr != ' ') return std::nullopt;
  r = std::from_chars(r.ptr + 1, end, resident);
  if (r.ec != std::errc{}) return std::nullopt;
  return resident * static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
}

bool resident_set_reader::past_max_rss(const queue_config& queue, const std::string& task) {
  const auto rss = bytes();
  if (!rss) {
    if (!unreadable_logged_) {
      spdlog::error("spooler for queue {}: cannot read /proc/self/statm: max_rss is not enforced", queue.name);
      unreadable_logged_ = true;
    }
    return false;
  }
  if (*rss <= queue.max_rss) return false;
  spdlog::info("spooler for queue {}: resident set {}{} is past max_rss {}: recycling", queue.name, mib_text(*rss),
               task.empty() ? std::string() : " after task " + task, mib_text(queue.max_rss));
  return true;
}

std::string mib_text(std::uint64_t bytes) { return fmt::format("{:.1f}MiB", static_cast<double>(bytes) / (1 << 20)); }

}  // namespace spoold

#include "child_process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <stdexcept>
#include <system_error>
#include <utility>

namespace spoold::exec {

namespace {

std::runtime_error system_error(const std::string& what, int err) {
  return std::runtime_error(what + ": " + std::generic_category().message(err));
}

class unique_fd {
 public:
  unique_fd() = default;
  explicit unique_fd(int fd) : fd_(fd) {}
  unique_fd(unique_fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  unique_fd& operator=(unique_fd&& other) noexcept {
    if (this != &other) {
      reset();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  unique_fd(const unique_fd&) = delete;
  unique_fd& operator=(const unique_fd&) = delete;
  ~unique_fd() { reset(); }

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  // close() is not retried on EINTR: Linux has released the descriptor.
  void reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

struct pipe_ends {
  unique_fd read;
  unique_fd write;
};

// Both ends are close-on-exec and numbered 3 or above. A spooler started
// with stdin or stderr closed gets 0..2 back from pipe2(), and the child's
// dup2() onto 0 and 2 would then clobber one end with the other.
pipe_ends make_pipe(const char* purpose) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) throw system_error(std::string("cannot create the pipe for ") + purpose, errno);
  pipe_ends ends{unique_fd(fds[0]), unique_fd(fds[1])};
  for (unique_fd* end : {&ends.read, &ends.write}) {
    if (end->get() > 2) continue;
    const int moved = ::fcntl(end->get(), F_DUPFD_CLOEXEC, 3);
    if (moved < 0) throw system_error(std::string("cannot move the pipe for ") + purpose, errno);
    *end = unique_fd(moved);
  }
  return ends;
}

void set_nonblocking(int fd) {
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0) {
    throw system_error("cannot make a pipe non-blocking", errno);
  }
}

// Blocks every signal in this thread until destroyed, so the child starts
// with no handler of the host able to run before it resets them.
class signals_blocked {
 public:
  signals_blocked() {
    sigset_t all;
    ::sigfillset(&all);
    ::pthread_sigmask(SIG_SETMASK, &all, &saved_);
  }
  ~signals_blocked() { ::pthread_sigmask(SIG_SETMASK, &saved_, nullptr); }
  signals_blocked(const signals_blocked&) = delete;
  signals_blocked& operator=(const signals_blocked&) = delete;

 private:
  sigset_t saved_;
};

// Owns a started child until it is reaped: kills and reaps it if the
// caller leaves early, so no path leaves a zombie or a stray command.
class child {
 public:
  explicit child(pid_t pid) : pid_(pid) {}
  child(const child&) = delete;
  child& operator=(const child&) = delete;
  ~child() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      int status;
      while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
      }
    }
  }

  pid_t pid() const { return pid_; }

  int wait() {
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      const pid_t pid = std::exchange(pid_, -1);
      // ECHILD: someone else reaped it, e.g. SIGCHLD set to SIG_IGN.
      throw system_error("cannot get the exit status of the command (pid " + std::to_string(pid) + ")", err);
    }
    pid_ = -1;
    return status;
  }

 private:
  pid_t pid_;
};

// A descriptor that polls readable when the child exits, or -1 on kernels
// before 5.3. Through syscall(): glibc 2.36's <sys/pidfd.h> lacks extern "C".
int open_pidfd(pid_t pid) {
#ifdef SYS_pidfd_open
  return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
#else
  (void)pid;
  return -1;
#endif
}

struct child_setup {
  pid_t parent;
  int stdin_fd;
  int stderr_fd;
  int error_fd;
  char* const* argv;
  char* const* envp;
};

// fork() and exec by hand, not posix_spawn(): the command must die with the
// spooler (PR_SET_PDEATHSIG, set in the child), or a spooler the host kills
// at its timeout would leave the command running, and posix_spawn has no
// attribute for it. Boost.Process could run the prctl in a child hook, but
// feeding stdin while draining stderr would then need its Asio machinery for
// what the poll() loop below does in a few lines.
//
// Between fork() and exec only async-signal-safe calls: the spooler may
// have other threads, whose locks (malloc's among them) are copied held.
// execvpe is not on POSIX's list, but glibc's builds the PATH candidates on
// the stack and does not allocate.
[[noreturn]] void exec_child(const child_setup& s) noexcept {
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig == SIGKILL || sig == SIGSTOP) continue;
    struct sigaction action {};
    action.sa_handler = SIG_DFL;
    ::sigaction(sig, &action, nullptr);  // fails harmlessly for signals libc reserves
  }
  // The parent may have died before prctl(); then nobody waits for us.
  if (::prctl(PR_SET_PDEATHSIG, SIGKILL) == 0 && ::getppid() != s.parent) ::_exit(127);
  int err = 0;
  if (::dup2(s.stdin_fd, STDIN_FILENO) < 0 || ::dup2(s.stderr_fd, STDERR_FILENO) < 0) {
    err = errno;
  } else {
    // Descriptors the host opened without O_CLOEXEC (a locked task file,
    // a socket) must not outlive the task in a command's background child.
    // Kernels before 5.11 lack the flag; the host opens with O_CLOEXEC anyway.
    ::close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
    sigset_t none;
    ::sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::execvpe(s.argv[0], s.argv, s.envp);
    err = errno;
  }
  const ssize_t ignored = ::write(s.error_fd, &err, sizeof err);
  (void)ignored;
  ::_exit(127);
}

std::vector<char*> c_strings(const std::vector<std::string>& strings) {
  std::vector<char*> out;
  out.reserve(strings.size() + 1);
  for (const std::string& s : strings) out.push_back(const_cast<char*>(s.c_str()));
  out.push_back(nullptr);
  return out;
}

void keep_tail(std::string& tail, const char* data, std::size_t size) {
  tail.append(data, size);
  // Trimmed in batches, not on every read, to keep this linear.
  if (tail.size() > 2 * stderr_tail_limit) tail.erase(0, tail.size() - stderr_tail_limit);
}

// Reads what is in the pipe now, at most max_reads buffers so a command
// that never stops writing cannot starve the other pipe or hold us after it
// exited. Returns false at end of file.
bool read_available(int fd, std::string& tail, int max_reads) {
  char buffer[16384];
  for (int i = 0; i < max_reads;) {
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n > 0) {
      keep_tail(tail, buffer, static_cast<std::size_t>(n));
      ++i;
      continue;
    }
    if (n == 0) return false;
    if (errno == EINTR) continue;
    if (errno == EAGAIN) return true;
    throw system_error("cannot read the command's stderr", errno);
  }
  return true;
}

// Writes what the pipe takes now. Returns false when all of input is
// written or the command closed its stdin (EPIPE: not reading is its right).
bool write_available(int fd, std::string_view input, std::size_t& written) {
  while (written < input.size()) {
    const ssize_t n = ::write(fd, input.data() + written, std::min<std::size_t>(input.size() - written, 65536));
    if (n >= 0) {
      written += static_cast<std::size_t>(n);
      continue;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN) return true;
    if (errno == EPIPE) return false;
    throw system_error("cannot write the task body to the command's stdin", errno);
  }
  return false;
}

}  // namespace

command_result run_command(const std::vector<std::string>& argv, const std::vector<std::string>& env,
                           std::string_view input) {
  if (argv.empty() || argv.front().empty()) throw std::runtime_error("no command to run");
  // Everything the child touches is allocated before fork().
  const std::vector<char*> argv_c = c_strings(argv);
  const std::vector<char*> envp_c = c_strings(env);

  pipe_ends to_stdin = make_pipe("the command's stdin");
  pipe_ends from_stderr = make_pipe("the command's stderr");
  pipe_ends exec_error = make_pipe("reporting exec errors");
  const child_setup setup{::getpid(),    to_stdin.read.get(), from_stderr.write.get(), exec_error.write.get(),
                          argv_c.data(), envp_c.data()};

  pid_t pid;
  int fork_errno;
  {
    signals_blocked blocked;
    pid = ::fork();
    fork_errno = errno;
    if (pid == 0) exec_child(setup);
  }
  if (pid < 0) throw system_error("cannot fork to run '" + argv.front() + "'", fork_errno);
  child command(pid);
  to_stdin.read.reset();
  from_stderr.write.reset();
  exec_error.write.reset();

  // The error pipe closes on a successful exec, or carries exec's errno.
  int exec_errno = 0;
  ssize_t n;
  do {
    n = ::read(exec_error.read.get(), &exec_errno, sizeof exec_errno);
  } while (n < 0 && errno == EINTR);
  if (n == static_cast<ssize_t>(sizeof exec_errno)) {
    command.wait();
    throw system_error("cannot run '" + argv.front() + "' (check the option command and PATH)", exec_errno);
  }

  // With a pidfd the loop ends when the command exits, even if a background
  // child of it keeps stderr open; without one (Linux < 5.3), at stderr EOF.
  unique_fd exited(open_pidfd(command.pid()));
  unique_fd& stdin_w = to_stdin.write;
  unique_fd& stderr_r = from_stderr.read;
  set_nonblocking(stdin_w.get());
  set_nonblocking(stderr_r.get());
  std::size_t written = 0;
  if (input.empty()) stdin_w.reset();

  command_result result{0, {}};
  while (stdin_w.valid() || stderr_r.valid()) {
    pollfd fds[3];
    nfds_t count = 0;
    const auto add = [&](const unique_fd& fd, short events) {
      if (!fd.valid()) return static_cast<pollfd*>(nullptr);
      fds[count] = pollfd{fd.get(), events, 0};
      return &fds[count++];
    };
    const pollfd* in = add(stdin_w, POLLOUT);
    const pollfd* err = add(stderr_r, POLLIN);
    const pollfd* done = add(exited, POLLIN);
    if (::poll(fds, count, -1) < 0) {
      if (errno == EINTR) continue;
      throw system_error("cannot poll the command's pipes", errno);
    }
    if (in != nullptr && in->revents != 0 && !write_available(stdin_w.get(), input, written)) stdin_w.reset();
    if (err != nullptr && err->revents != 0 && !read_available(stderr_r.get(), result.stderr_tail, 4)) {
      stderr_r.reset();
    }
    if (done != nullptr && done->revents != 0) {
      // What the command wrote before it exited; up to 1 MiB is read to
      // find the end of it.
      if (stderr_r.valid()) read_available(stderr_r.get(), result.stderr_tail, 64);
      break;
    }
  }
  stdin_w.reset();
  stderr_r.reset();
  result.wait_status = command.wait();
  if (result.stderr_tail.size() > stderr_tail_limit) {
    result.stderr_tail.erase(0, result.stderr_tail.size() - stderr_tail_limit);
  }
  return result;
}

}  // namespace spoold::exec

#include "signals.hpp"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

namespace spoold {

namespace {

int g_pipe_write = -1;
volatile sig_atomic_t g_child = 0;
volatile sig_atomic_t g_stop = 0;
volatile sig_atomic_t g_reload = 0;
volatile sig_atomic_t g_status = 0;
volatile sig_atomic_t g_user2 = 0;
volatile sig_atomic_t g_alarm = 0;

void on_signal(int sig) {
  const int saved = errno;
  switch (sig) {
    case SIGCHLD: g_child = 1; break;
    case SIGHUP: g_reload = 1; break;
    case SIGUSR1: g_status = 1; break;
    case SIGUSR2: g_user2 = 1; break;
    case SIGALRM: g_alarm = 1; break;
    default: g_stop = g_stop + 1; break;  // SIGTERM, SIGINT
  }
  const char byte = 0;
  (void)!::write(g_pipe_write, &byte, 1);
  errno = saved;
}

bool take_flag(volatile sig_atomic_t& flag) {
  const bool set = flag != 0;
  flag = 0;
  return set;
}

}  // namespace

result<void> signal_pipe::install() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) return io_error("create the signal pipe", errno);
  read_.reset(fds[0]);
  write_.reset(fds[1]);
  g_pipe_write = fds[1];
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  for (int sig : {SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2, SIGALRM}) {
    if (::sigaction(sig, &sa, nullptr) != 0) return io_error("install the handler of " + std::to_string(sig), errno);
  }
  struct sigaction ignore {};
  ignore.sa_handler = SIG_IGN;
  sigemptyset(&ignore.sa_mask);
  if (::sigaction(SIGPIPE, &ignore, nullptr) != 0) return io_error("ignore SIGPIPE", errno);
  return {};
}

void signal_pipe::drain() {
  char buf[64];
  while (::read(read_.get(), buf, sizeof(buf)) > 0) {
  }
}

signal_events signal_pipe::take() {
  signal_events e;
  e.child_exited = take_flag(g_child);
  e.reload = take_flag(g_reload);
  e.status = take_flag(g_status);
  e.ignored_user2 = take_flag(g_user2);
  e.ignored_alarm = take_flag(g_alarm);
  e.stop = static_cast<unsigned>(g_stop);  // a count across the whole run: the second one forces
  return e;
}

void reset_signals_after_fork() {
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig != SIGKILL && sig != SIGSTOP) ::signal(sig, SIG_DFL);
  }
}

}  // namespace spoold

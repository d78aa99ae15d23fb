// The real spoold for the regression tests that need the whole path (TOML
// file -> master -> spooler -> plugin -> task file): started in its own
// process group with its log in a file, stopped with SIGTERM and a bounded
// wait, then SIGKILL to the group, so a test never leaks it.
#pragma once

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <fcntl.h>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <thread>

#include "../unit/support/temp_dir.hpp"

namespace spoold::regression {

// The build folder: the test binary is build/tests/spoold_unit_tests.
inline std::filesystem::path build_dir() {
  return std::filesystem::read_symlink("/proc/self/exe").parent_path().parent_path();
}

inline std::string env_or(const char* name, const std::filesystem::path& fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::string(v) : fallback.string();
}

inline std::string spoold_bin() { return env_or("SPOOLD_BIN", build_dir() / "bin" / "spoold"); }
inline std::string shipped_plugin_dir() { return env_or("SPOOLD_PLUGIN_DIR", build_dir() / "plugins"); }
inline std::string fixture_plugin_dir() {
  return env_or("SPOOLD_TEST_PLUGIN_DIR", build_dir() / "tests" / "plugins" / "out");
}

// Polls pred every 10 ms until it holds or timeout passes; true if it held.
template <class Pred>
bool wait_until(Pred pred, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (pred()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

class spoold_process {
 public:
  spoold_process(const std::string& config, const std::string& log_file) : log_file_(log_file) {
    const std::string bin = spoold_bin();
    if (!std::filesystem::exists(bin)) throw std::runtime_error(bin + " does not exist: build the target spoold");
    pid_ = ::fork();
    if (pid_ < 0) throw std::runtime_error("fork failed");
    if (pid_ == 0) {
      ::setpgid(0, 0);
      const int fd = ::open(log_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
      if (fd < 0) ::_exit(126);
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      for (const int sig : {SIGSEGV, SIGABRT, SIGBUS, SIGILL, SIGFPE, SIGTERM, SIGINT, SIGHUP, SIGPIPE}) {
        ::signal(sig, SIG_DFL);
      }
      sigset_t none;
      sigemptyset(&none);
      ::sigprocmask(SIG_SETMASK, &none, nullptr);
      ::execl(bin.c_str(), bin.c_str(), "-c", config.c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
    ::setpgid(pid_, pid_);  // both sides, so the group exists whichever runs first
  }
  spoold_process(const spoold_process&) = delete;
  spoold_process& operator=(const spoold_process&) = delete;
  ~spoold_process() { stop(); }

  std::string log() const { return unit::exists(log_file_) ? unit::read_file(log_file_) : std::string(); }
  bool logged(const std::string& needle) const { return log().find(needle) != std::string::npos; }

  // SIGTERM, up to 15 s for a clean exit, then SIGKILL to the whole group.
  // Returns the wait status (or -1 if already stopped).
  int stop() {
    if (pid_ <= 0) return -1;
    ::kill(pid_, SIGTERM);
    int status = -1;
    const bool exited = wait_until(
        [&] {
          const pid_t r = ::waitpid(pid_, &status, WNOHANG);
          return r == pid_ || (r < 0 && errno != EINTR);
        },
        std::chrono::seconds(15));
    ::kill(-pid_, SIGKILL);
    if (!exited) {
      while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
      }
    }
    pid_ = -1;
    return status;
  }

 private:
  std::string log_file_;
  pid_t pid_ = -1;
};

}  // namespace spoold::regression

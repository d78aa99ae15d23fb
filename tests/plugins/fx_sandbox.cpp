// fx_sandbox: tries one thing a sandbox may forbid, records what the kernel
// said, and fails the task with that error (Ok when it worked), so a test
// sees both the record and the task's fate.
//
// Options:  record_file (required): opened in init(), before the sandbox, and
//           written through that descriptor afterwards (as a plugin keeps the
//           log file its init() opened).
// Args:     try = read | write | alloc | exec | spin | open_many, with
//           path = <file> (read, write, exec), mb = <n> (alloc), seconds = <n> or ms = <n> (spin, wall clock),
//           count = <n> (open_many), as_uid = <n> (exec: the child switches to this
//           uid before exec, a control for the setuid test when no sandbox does it).
// Record:   "<id> try=<what> outcome=ok|<ERRNO name> [output=<the exec'd program's
//           first line>] euid=<the spooler's euid> pid=<the spooler's pid>"
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <spoold/plugin.hpp>

namespace {

std::string errno_name(int err) {
  switch (err) {
    case EACCES: return "EACCES";
    case EPERM: return "EPERM";
    case ENOMEM: return "ENOMEM";
    case EMFILE: return "EMFILE";
    case ENOENT: return "ENOENT";
    case EXDEV: return "EXDEV";
    default: return "errno" + std::to_string(err);
  }
}

long number_arg(const spoold::Task& task, const char* key, long fallback) {
  const auto text = task.arg(key);
  if (!text) return fallback;
  long v = 0;
  const auto [ptr, ec] = std::from_chars(text->data(), text->data() + text->size(), v);
  if (ec != std::errc() || ptr != text->data() + text->size()) {
    throw std::runtime_error(std::string("fx_sandbox: the arg ") + key + " is not a number");
  }
  return v;
}

// 0 when it worked, else the errno.
int try_read(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno;
  char c;
  const int err = ::read(fd, &c, 1) < 0 ? errno : 0;
  ::close(fd);
  return err;
}

int try_write(const std::string& path) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return errno;
  const int err = ::write(fd, "x\n", 2) < 0 ? errno : 0;
  ::close(fd);
  return err;
}

int try_alloc(long mb) {
  const auto size = static_cast<std::size_t>(mb) << 20;
  auto* p = static_cast<char*>(std::malloc(size));
  if (p == nullptr) return ENOMEM;
  std::memset(p, 1, size);  // touched, so it is really there
  std::free(p);
  return 0;
}

int try_open_many(long count) {
  std::vector<int> fds;
  int err = 0;
  for (long i = 0; i < count; ++i) {
    const int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      err = errno;
      break;
    }
    fds.push_back(fd);
  }
  for (int fd : fds) ::close(fd);
  return err;
}

// Runs path and keeps the first line it prints; the error of fork/exec.
int try_exec(const std::string& path, long as_uid, std::string& output) {
  int out[2];
  if (::pipe2(out, O_CLOEXEC) != 0) return errno;
  int status_pipe[2];  // carries exec's errno back when it fails
  if (::pipe2(status_pipe, O_CLOEXEC) != 0) return errno;
  const pid_t pid = ::fork();
  if (pid < 0) return errno;
  if (pid == 0) {
    ::dup2(out[1], STDOUT_FILENO);
    int err = 0;
    if (as_uid >= 0 && ::setresuid(static_cast<uid_t>(as_uid), static_cast<uid_t>(as_uid),
                                   static_cast<uid_t>(as_uid)) != 0) {
      err = errno;
    } else {
      char* argv[] = {const_cast<char*>(path.c_str()), nullptr};
      ::execv(path.c_str(), argv);
      err = errno;
    }
    (void)!::write(status_pipe[1], &err, sizeof(err));
    ::_exit(127);
  }
  ::close(out[1]);
  ::close(status_pipe[1]);
  int err = 0;
  if (::read(status_pipe[0], &err, sizeof(err)) != static_cast<ssize_t>(sizeof(err))) err = 0;
  ::close(status_pipe[0]);
  char buf[256];
  ssize_t n = 0;
  while ((n = ::read(out[0], buf, sizeof(buf))) > 0) output.append(buf, static_cast<std::size_t>(n));
  ::close(out[0]);
  int wstatus = 0;
  ::waitpid(pid, &wstatus, 0);
  if (const auto nl = output.find('\n'); nl != std::string::npos) output.resize(nl);
  return err;
}

void spin(long ms) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  volatile unsigned long x = 0;
  while (std::chrono::steady_clock::now() < until) x = x + 1;
}

class fx_sandbox final : public spoold::Plugin {
 public:
  ~fx_sandbox() override {
    if (record_fd_ >= 0) ::close(record_fd_);
  }

  void init(const spoold::InitContext& context) override {
    const auto file = context.options.get("record_file");
    if (!file || file->empty()) throw std::runtime_error("fx_sandbox needs the option record_file");
    record_fd_ = ::open(std::string(*file).c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (record_fd_ < 0) throw std::runtime_error("fx_sandbox: cannot open record_file: " + std::string(std::strerror(errno)));
  }

  spoold::Status handle(const spoold::Task& task) override {
    const std::string what(task.arg("try").value_or(""));
    const std::string path(task.arg("path").value_or(""));
    std::string output;
    int err = 0;
    if (what == "read") {
      err = try_read(path);
    } else if (what == "write") {
      err = try_write(path);
    } else if (what == "alloc") {
      err = try_alloc(number_arg(task, "mb", 1));
    } else if (what == "exec") {
      err = try_exec(path, number_arg(task, "as_uid", -1), output);
    } else if (what == "spin") {
      spin(number_arg(task, "ms", 1000 * number_arg(task, "seconds", 1)));
    } else if (what == "open_many") {
      err = try_open_many(number_arg(task, "count", 1));
    } else {
      throw std::runtime_error("fx_sandbox: the arg try must be read, write, alloc, exec, spin or open_many");
    }
    std::string line = std::string(task.id()) + " try=" + what + " outcome=" + (err == 0 ? "ok" : errno_name(err));
    if (!output.empty()) line += " output=" + output;
    line += " euid=" + std::to_string(::geteuid()) + " pid=" + std::to_string(::getpid()) + "\n";
    (void)!::write(record_fd_, line.data(), line.size());
    if (err != 0) return task.fail(what + " " + path + ": " + errno_name(err));
    return spoold::Status::Ok;
  }

 private:
  int record_fd_ = -1;
};

}  // namespace

SPOOLD_PLUGIN(fx_sandbox)

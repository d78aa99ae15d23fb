#include "instance_lock.hpp"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstddef>
#include <cstring>

namespace spoold {

namespace {

// "\0spoold-config-<dev>-<ino>": abstract, so no file is ever left behind.
socklen_t abstract_address(const struct stat& st, sockaddr_un& addr) {
  std::memset(&addr, 0, sizeof(addr));
  addr.sun_family = AF_UNIX;
  const std::string name = "spoold-config-" + std::to_string(st.st_dev) + "-" + std::to_string(st.st_ino);
  std::memcpy(addr.sun_path + 1, name.data(), name.size());
  return static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
}

// The pid of the host holding the address, or -1 when it cannot be told.
pid_t holder_pid(const sockaddr_un& addr, socklen_t len) {
  unique_fd probe(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!probe.valid() || ::connect(probe.get(), reinterpret_cast<const sockaddr*>(&addr), len) != 0) return -1;
  ucred cred {};
  socklen_t size = sizeof(cred);
  if (::getsockopt(probe.get(), SOL_SOCKET, SO_PEERCRED, &cred, &size) != 0) return -1;
  return cred.pid;
}

}  // namespace

result<instance_lock> instance_lock::acquire(const std::string& config_path) {
  struct stat st {};
  if (::stat(config_path.c_str(), &st) != 0) return io_error("stat " + config_path, errno);
  sockaddr_un addr {};
  const socklen_t len = abstract_address(st, addr);
  unique_fd s(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!s.valid()) return io_error("create the instance socket", errno);
  if (::bind(s.get(), reinterpret_cast<const sockaddr*>(&addr), len) != 0) {
    if (errno != EADDRINUSE) return io_error("bind the instance socket for " + config_path, errno);
    const pid_t pid = holder_pid(addr, len);
    const std::string who = pid > 0 ? "pid " + std::to_string(pid) : "a process whose pid cannot be read";
    return make_error("another spoold (" + who + ") is already running with " + config_path +
                      ": stop it first" + (pid > 0 ? " (kill -TERM " + std::to_string(pid) + ")" : std::string()) +
                      ", or give this host a config of its own");
  }
  if (::listen(s.get(), 4) != 0) return io_error("listen on the instance socket", errno);
  instance_lock lock;
  lock.socket_ = std::move(s);
  return lock;
}

void instance_lock::accept_knock() {
  for (;;) {
    const int c = ::accept4(socket_.get(), nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) return;
    ::close(c);
  }
}

}  // namespace spoold

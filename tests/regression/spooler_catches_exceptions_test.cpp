// Issue 9: an exception in a forked spooler could unwind out of run_spooler() into the master's frames.
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>

#include "../plugins/plugin_harness.hpp"
#include "logging.hpp"
#include "spooler.hpp"

TEST_CASE("regression: an exception inside a spooler ends it with its own exit code, not in its caller",
          "[regression][spooler]") {
  int sockets[2];
  REQUIRE(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sockets) == 0);
  spoold::host_config host;
  // A log_format that load_config() never lets through: setup_logging()
  // throws inside run_spooler(), a real exception from the spooler's own code.
  host.log_format = "xml";
  spoold::queue_config queue;
  queue.name = "q";
  spoold::spooler_slot slot;
  const pid_t parent = ::getpid();
  const pid_t pid = spoold::test::run_in_child([&] {
    // Whatever reaches this frame ends the child with 100.
    spoold::run_spooler(host, queue, sockets[1], &slot, nullptr, parent);
  });
  ::close(sockets[1]);
  const auto status = spoold::test::wait_for_child(pid, std::chrono::seconds(20));
  ::close(sockets[0]);
  if (!status) spoold::test::kill_child(pid);
  REQUIRE(status.has_value());
  REQUIRE(WIFEXITED(*status));
  CHECK(WEXITSTATUS(*status) == spoold::k_spooler_exit_uncaught);
}

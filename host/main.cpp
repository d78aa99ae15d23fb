// spoold: argv -> config -> logging -> run the master, or check the file.
// Exit status: 0 success, 1 runtime failure, 2 usage or config error.
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <spoold/plugin.hpp>

#include "config.hpp"
#include "logging.hpp"
#include "plugin_check.hpp"
#include "instance_lock.hpp"
#include "master.hpp"
#include "privilege_review.hpp"
#include "redis_conn.hpp"
#include "metrics.hpp"

namespace {

constexpr const char* k_usage =
    "usage: spoold -c FILE [--check]\n"
    "\n"
    "Runs the queues of FILE (TOML) in the foreground, logging to stderr.\n"
    "  -c, --config FILE  the configuration file\n"
    "  --version          print the version\n"
    "  --check            validate FILE, then load and start (create + init, with\n"
    "                     the real options) every queue's plugin chain in a child,\n"
    "                     then exit: 0 when all is well, 2 with every problem listed\n"
    "Signals: TERM/INT finish the tasks in hand and exit 0 (a second one kills\n"
    "them); HUP re-reads FILE, checks it in a child, replaces the spoolers and\n"
    "offers ignored tasks again; USR1 logs a status line per queue; USR2 and\n"
    "ALRM are logged and ignored. A second spoold on the same FILE is refused.\n";

int usage_error(const std::string& message) {
  std::fprintf(stderr, "spoold: %s\n%s", message.c_str(), k_usage);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string config_path;
  bool check = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "-c" || arg == "--config") {
      if (i + 1 >= argc) return usage_error(arg + " needs a file name");
      config_path = argv[++i];
    } else if (arg == "--check") {
      check = true;
    } else if (arg == "-h" || arg == "--help") {
      std::fputs(k_usage, stdout);
      return 0;
    } else if (arg == "--version") {
      std::printf("spoold %s (plugin ABI %u)%s\n", SPOOLD_VERSION, SPOOLD_ABI_VERSION,
                  spoold::fault_injection_built() ? " with test fault injection (SPOOLD_FAULT_INJECT)" : "");
      return 0;
    } else {
      return usage_error("unknown argument '" + arg + "'");
    }
  }
  if (config_path.empty()) return usage_error("no configuration file: give -c FILE");
  std::optional<spoold::instance_lock> instance;

  auto loaded = spoold::load_config(config_path);
  if (!check && std::filesystem::exists(config_path)) {
    // Before anything else: a second host on this file would consume its
    // queues beside the first.
    auto lock = spoold::instance_lock::acquire(loaded.value.path);
    if (!lock) {
      std::fprintf(stderr, "spoold: %s\n", lock.err().message.c_str());
      return 2;
    }
    instance = std::move(*lock);
  }
  // Every queue whose plugins exist is checked in a child even when the file
  // has other problems, so that one pass shows them all. --check starts each
  // chain (init with the real options); a start only loads the plugins, so
  // that a database down at boot does not keep the host from starting.
  auto plugin_problems = spoold::check_plugins_in_child(
      loaded.value, check ? spoold::check_depth::load_and_init : spoold::check_depth::load);
  loaded.problems.insert(loaded.problems.end(), plugin_problems.begin(), plugin_problems.end());
  // Before any directory is created or any task read: a queue others can
  // write, or a sandbox this host cannot apply, is refused at --check as at
  // start.
  const auto privileges = spoold::review_privileges(loaded.value);
  loaded.problems.insert(loaded.problems.end(), privileges.problems.begin(), privileges.problems.end());
  // A Redis queue's server, within a bounded time: a wrong password or a
  // key of another type stops --check and the start; a server that does
  // not answer stops --check, and a start only warns (its spoolers connect
  // when it is back).
  std::vector<std::string> redis_warnings;
  for (const auto& q : loaded.value.queues) {
    if (!q.redis) continue;
    auto probe = spoold::probe_redis_queue(q.name, q.redis->url, q.redis->stream, std::chrono::seconds(3));
    auto& into = probe.unreachable && !check ? redis_warnings : loaded.problems;
    into.insert(into.end(), probe.problems.begin(), probe.problems.end());
  }
  if (check) {
    // The port a host running on this very file listens on is its own.
    const bool running = std::filesystem::exists(config_path) && !spoold::instance_lock::acquire(loaded.value.path);
    if (auto p = spoold::probe_metrics_address(loaded.value.host, running)) loaded.problems.push_back(*p);
  }
  if (!loaded.ok()) {
    for (const auto& p : loaded.problems) std::fprintf(stderr, "spoold: %s\n", p.c_str());
    std::fprintf(stderr, "spoold: %zu problem(s) in %s\n", loaded.problems.size(), config_path.c_str());
    return 2;
  }
  if (check) {
    for (const auto& n : privileges.notes) std::printf("%s\n", n.c_str());
    for (const auto& w : privileges.warnings) std::fprintf(stderr, "spoold: warning: %s\n", w.c_str());
    std::printf("%s: OK (%zu queue(s), every plugin chain loads and starts)\n", config_path.c_str(),
                loaded.value.queues.size());
    return 0;
  }
  spoold::setup_logging(loaded.value.host.log_level, loaded.value.host.log_format, "master");
  for (const auto& n : privileges.notes) spdlog::info("{}", n);
  for (const auto& w : privileges.warnings) spdlog::warn("{}", w);
  for (const auto& w : redis_warnings) spdlog::warn("{}: its spoolers connect when it answers", w);
  return spoold::run_master(std::move(loaded.value), std::move(*instance));
}

// spoold: argv -> config -> logging -> run the master, or check the file.
// Exit status: 0 success, 1 runtime failure, 2 usage or config error.
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>

#include <spoold/plugin.hpp>

#include "config.hpp"
#include "logging.hpp"
#include "plugin_check.hpp"
#include "supervisor.hpp"

namespace {

constexpr const char* k_usage =
    "usage: spoold -c FILE [--check]\n"
    "\n"
    "Runs the queues of FILE (TOML) in the foreground, logging to stderr.\n"
    "  -c, --config FILE  the configuration file\n"
    "  --check            validate FILE and load every plugin once, then exit:\n"
    "                     0 when all is well, 2 with every problem listed\n"
    "  --version          print the version\n"
    "Signals: TERM/INT finish the tasks in hand and exit 0; HUP re-reads FILE.\n";

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
      std::printf("spoold %s (plugin ABI %u)\n", SPOOLD_VERSION, SPOOLD_ABI_VERSION);
      return 0;
    } else {
      return usage_error("unknown argument '" + arg + "'");
    }
  }
  if (config_path.empty()) return usage_error("no configuration file: give -c FILE");

  auto loaded = spoold::load_config(config_path);
  if (loaded.ok()) {
    auto plugin_problems = spoold::check_plugins_in_child(loaded.value);
    loaded.problems.insert(loaded.problems.end(), plugin_problems.begin(), plugin_problems.end());
  }
  if (!loaded.ok()) {
    for (const auto& p : loaded.problems) std::fprintf(stderr, "spoold: %s\n", p.c_str());
    std::fprintf(stderr, "spoold: %zu problem(s) in %s\n", loaded.problems.size(), config_path.c_str());
    return 2;
  }
  if (check) {
    std::printf("%s: OK (%zu queue(s), every plugin loads)\n", config_path.c_str(), loaded.value.queues.size());
    return 0;
  }
  spoold::setup_logging(loaded.value.host.log_level, loaded.value.host.log_format, "master");
  return spoold::run_supervisor(std::move(loaded.value));
}

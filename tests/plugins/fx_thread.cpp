// fx_thread: starts a detached thread in init() that runs this library's
// code and touches its data every millisecond until the process ends, as a
// plugin with a background flusher or client library does. Unloading the
// library under it (dlclose) would fault that thread; the library's ELF
// destructor runs only when it is unloaded or on exit(), never on _exit(),
// so it records "unloaded pid=N" to show that it happened.
//
// Options:  record_file (required): gets "handled pid=N" per task and the
//           "unloaded pid=N" line
#include <spoold/plugin.hpp>

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <thread>

#include "common/append_file.hpp"

namespace {

std::atomic<unsigned long> g_ticks{0};
char g_record_file[4096];  // plain data: the ELF destructor may run after C++ statics are gone

__attribute__((destructor)) void on_unload() {
  if (g_record_file[0] == '\0') return;
  const std::string line = "unloaded pid=" + std::to_string(::getpid()) + "\n";
  try {
    spoold::plugins::append_to_file(g_record_file, line);
  } catch (...) {
  }
}

void tick_forever() {
  for (;;) {
    g_ticks.fetch_add(1);
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

class fx_thread final : public spoold::Plugin {
 public:
  void init(const spoold::InitContext& context) override {
    const auto file = context.options.get("record_file");
    if (!file || file->empty()) throw std::runtime_error("fx_thread needs the option record_file");
    const std::string path = std::filesystem::absolute(std::string(*file)).string();
    if (path.size() >= sizeof g_record_file) throw std::runtime_error("fx_thread: record_file is too long");
    std::snprintf(g_record_file, sizeof g_record_file, "%s", path.c_str());
    std::thread(tick_forever).detach();
  }

  spoold::Status handle(const spoold::Task& task) override {
    // The thread is running this library's code before the task ends.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (g_ticks.load() == 0) {
      if (std::chrono::steady_clock::now() > deadline) return task.retry("fx_thread: the thread never ran");
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    spoold::plugins::append_to_file(g_record_file, "handled pid=" + std::to_string(::getpid()) + "\n");
    return spoold::Status::Ok;
  }
};

}  // namespace

SPOOLD_PLUGIN(fx_thread)

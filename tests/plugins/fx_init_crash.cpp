// fx_init_crash: init() dies of SIGSEGV, so every spooler process of its
// queue dies right after start: the case respawn throttling exists for.
// With the option record_file set, each init() first appends
// "init queue=<queue> pid=<pid>" there, so tests can count the respawns.
#include <spoold/plugin.hpp>

#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "common/append_file.hpp"

namespace {

class fx_init_crash final : public spoold::Plugin {
 public:
  void init(const spoold::InitContext& context) override {
    if (const auto file = context.options.get("record_file")) {
      spoold::plugins::append_to_file(std::filesystem::absolute(std::string(*file)).string(),
                                      "init queue=" + std::string(context.queue) +
                                          " pid=" + std::to_string(::getpid()) + "\n");
    }
    ::signal(SIGSEGV, SIG_DFL);
    sigset_t set;
    ::sigemptyset(&set);
    ::sigaddset(&set, SIGSEGV);
    ::sigprocmask(SIG_UNBLOCK, &set, nullptr);
    ::raise(SIGSEGV);
    ::_exit(128 + SIGSEGV);
  }

  spoold::Status handle(const spoold::Task&) override { return spoold::Status::Ok; }
};

}  // namespace

SPOOLD_PLUGIN(fx_init_crash)

// fx_init_crash: init() dies of SIGSEGV, so every spooler process of its
// queue dies right after start: the case respawn throttling exists for.
// With the option record_file set, each init() first appends
// "init queue=<queue> pid=<pid>" there, so tests can count the respawns.
#include <spoold/plugin.hpp>

#include <signal.h>

#include "die_of.hpp"
#include "record_line.hpp"

namespace {

class fx_init_crash final : public spoold::Plugin {
 public:
  void init(const spoold::InitContext& context) override {
    spoold::fixtures::record_init(context);
    spoold::fixtures::die_of(SIGSEGV);
  }

  spoold::Status handle(const spoold::Task&) override { return spoold::Status::Ok; }
};

}  // namespace

SPOOLD_PLUGIN(fx_init_crash)

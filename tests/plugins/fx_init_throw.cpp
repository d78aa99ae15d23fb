// fx_init_throw: init() refuses its options by throwing, the way a plugin
// reports a configuration error. With the option record_file set, each
// init() first appends "init queue=<queue> pid=<pid>" there.
#include <spoold/plugin.hpp>

#include <unistd.h>

#include <filesystem>
#include <stdexcept>
#include <string>

#include "common/append_file.hpp"

namespace {

class fx_init_throw final : public spoold::Plugin {
 public:
  void init(const spoold::InitContext& context) override {
    if (const auto file = context.options.get("record_file")) {
      spoold::plugins::append_to_file(std::filesystem::absolute(std::string(*file)).string(),
                                      "init queue=" + std::string(context.queue) +
                                          " pid=" + std::to_string(::getpid()) + "\n");
    }
    throw std::runtime_error("fx_init_throw refuses these options");
  }

  spoold::Status handle(const spoold::Task&) override { return spoold::Status::Ok; }
};

}  // namespace

SPOOLD_PLUGIN(fx_init_throw)

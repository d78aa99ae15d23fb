// fx_init_throw: init() refuses its options by throwing, the way a plugin
// reports a configuration error. With the option record_file set, each
// init() first appends "init queue=<queue> pid=<pid>" there.
#include <spoold/plugin.hpp>

#include <stdexcept>

#include "record_line.hpp"

namespace {

class fx_init_throw final : public spoold::Plugin {
 public:
  void init(const spoold::InitContext& context) override {
    spoold::fixtures::record_init(context);
    throw std::runtime_error("fx_init_throw refuses these options");
  }

  spoold::Status handle(const spoold::Task&) override { return spoold::Status::Ok; }
};

}  // namespace

SPOOLD_PLUGIN(fx_init_throw)

// fx_create_throw: the plugin's constructor throws, so the entry's create()
// returns null with the message: a plugin that cannot even be instantiated.
#include <spoold/plugin.hpp>

#include <stdexcept>

namespace {

class fx_create_throw final : public spoold::Plugin {
 public:
  fx_create_throw() { throw std::runtime_error("fx_create_throw: the constructor refuses"); }
  spoold::Status handle(const spoold::Task&) override { return spoold::Status::Ok; }
};

}  // namespace

SPOOLD_PLUGIN(fx_create_throw)

// fx_wrong_abi: a plugin built against a future header. Its entry is written
// by hand, as SPOOLD_PLUGIN would, but with SPOOLD_ABI_VERSION + 1; the
// host must refuse it before calling anything (the thunks work, in case a
// buggy host does call them).
#include <spoold/plugin.hpp>

namespace {

class fx_wrong_abi final : public spoold::Plugin {
 public:
  spoold::Status handle(const spoold::Task&) override { return spoold::Status::Ok; }
};

using thunks = spoold::detail::plugin_thunks<fx_wrong_abi>;

}  // namespace

extern "C" __attribute__((visibility("default"))) const spoold_plugin_v1* spoold_plugin_entry() {
  static const spoold_plugin_v1 entry = {SPOOLD_ABI_VERSION + 1, sizeof(spoold_plugin_v1), &thunks::create,
                                         &thunks::init,           &thunks::handle,           &thunks::destroy};
  return &entry;
}

// fx_small_struct: the right ABI version, but a struct_size that ends before
// destroy, as a truncated or mis-built entry would. The host must refuse it
// rather than read the missing pointer.
#include <spoold/plugin.hpp>

#include <cstddef>
#include <cstdint>

namespace {

class fx_small_struct final : public spoold::Plugin {
 public:
  spoold::Status handle(const spoold::Task&) override { return spoold::Status::Ok; }
};

using thunks = spoold::detail::plugin_thunks<fx_small_struct>;

}  // namespace

extern "C" __attribute__((visibility("default"))) const spoold_plugin_v1* spoold_plugin_entry() {
  static const spoold_plugin_v1 entry = {SPOOLD_ABI_VERSION,
                                         static_cast<std::uint32_t>(offsetof(spoold_plugin_v1, destroy)),
                                         &thunks::create,
                                         &thunks::init,
                                         &thunks::handle,
                                         &thunks::destroy};
  return &entry;
}

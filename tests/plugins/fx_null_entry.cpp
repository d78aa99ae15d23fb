// fx_null_entry: spoold_plugin_entry exists but returns null. The host must
// refuse it with a message instead of dereferencing it.
#include <spoold/plugin.hpp>

extern "C" __attribute__((visibility("default"))) const spoold_plugin_v1* spoold_plugin_entry() { return nullptr; }

// fx_no_entry: a valid shared object that does not export
// spoold_plugin_entry, like a library dropped into the plugin folder by
// mistake. Its one export keeps the object from being empty.
extern "C" __attribute__((visibility("default"))) int fx_no_entry_marker() { return 1; }

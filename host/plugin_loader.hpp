// Loads a plugin's .so with Boost.DLL and checks what crosses the boundary:
// the file's owner and mode, the exported entry, its ABI version and struct
// size. Each failure is one sentence that names the file.
#pragma once

#include <spoold/plugin.hpp>

#include <boost/dll/shared_library.hpp>
#include <memory>
#include <string>
#include <vector>

#include "config.hpp"
#include "result.hpp"

namespace spoold {

// What one handle() call came back with.
struct handle_outcome {
  std::int32_t status = 0;
  bool threw = false;       // any exception: a Retry
  bool failed = false;      // spoold::PermanentError: a Fail
  // The exception's what(); with a returned Retry or Fail, the reason the
  // plugin gave (Task::retry/fail), empty when it gave none.
  std::string error;
};

// One plugin instance in a spooler process. The library outlives the
// instance (members are destroyed in reverse order), and is never unloaded
// while the process runs: replacing a plugin means replacing the process.
class loaded_plugin {
 public:
  loaded_plugin(std::string name, std::string path, boost::dll::shared_library library, const spoold_plugin_v1* entry,
                void* instance);
  ~loaded_plugin();
  loaded_plugin(const loaded_plugin&) = delete;
  loaded_plugin& operator=(const loaded_plugin&) = delete;

  const std::string& name() const { return name_; }
  const std::string& path() const { return path_; }
  // The C entry and the instance, for the plugin tests that drive the
  // thunks themselves (tests/plugins/plugin_harness.hpp).
  const spoold_plugin_v1& entry() const { return *entry_; }
  void* instance() const { return instance_; }

  // Calls the plugin's init() with the queue's options, which this object
  // copies and keeps, as plugin.hpp promises; the log sink must outlive it.
  // chain_length: how many plugins share these options.
  result<void> init(const std::string& queue, const std::vector<option_entry>& options, void* log_context,
                    void (*log)(void*, std::int32_t, const char*, std::size_t), std::size_t chain_length);
  handle_outcome handle(const spoold_task_view& task);

 private:
  std::string name_;
  std::string path_;
  boost::dll::shared_library library_;
  const spoold_plugin_v1* entry_;
  void* instance_;
  // What init() was shown: the plugin may keep views into it.
  std::string queue_;
  std::vector<option_entry> options_;
  std::vector<spoold_option> option_views_;
};

// Refuses a plugin file, or its folder, that a user other than the owner
// (or root) can write, or whose owner is neither us nor root.
result<void> check_plugin_trust(const std::string& path);

// Loads <plugin_dir>/lib<name>.so and creates its instance.
result<std::unique_ptr<loaded_plugin>> load_plugin(const host_config& host, const std::string& name);

}  // namespace spoold

#include "plugin_loader.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "posix.hpp"

namespace spoold {

namespace {

// The buffer a plugin writes its error text into: room for exec's 2 KiB of
// stderr after its own words.
struct error_text {
  char data[4096];
  spoold_error_buffer buffer{data, sizeof(data), 0};
  std::string str() const { return std::string(data, buffer.size); }
};

std::string mode_text(mode_t m) {
  char buf[8];
  std::snprintf(buf, sizeof(buf), "%04o", m & 07777);
  return buf;
}

result<void> check_owner_and_mode(const std::string& path, const std::string& what) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return io_error("stat " + what + " " + path, errno);
  if (st.st_uid != 0 && st.st_uid != ::geteuid()) {
    return make_error("refusing " + what + " " + path + ": it belongs to uid " + std::to_string(st.st_uid) +
                      ", neither root nor this user (uid " + std::to_string(::geteuid()) +
                      "): a plugin is code that runs as this user; chown it");
  }
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
    return make_error("refusing " + what + " " + path + ": mode " + mode_text(st.st_mode) +
                      " lets other users write it, so they could put code in the host: chmod go-w " + path);
  }
  return {};
}

}  // namespace

loaded_plugin::loaded_plugin(std::string name, std::string path, boost::dll::shared_library library,
                             const spoold_plugin_v1* entry, void* instance)
    : name_(std::move(name)), path_(std::move(path)), library_(std::move(library)), entry_(entry), instance_(instance) {}

loaded_plugin::~loaded_plugin() {
  if (instance_ != nullptr) entry_->destroy(instance_);
}

result<void> loaded_plugin::init(const std::string& queue, const std::vector<option_entry>& options, void* log_context,
                                 void (*log)(void*, std::int32_t, const char*, std::size_t), std::size_t chain_length) {
  queue_ = queue;
  options_ = options;
  option_views_.clear();
  option_views_.reserve(options_.size());
  for (const auto& o : options_) {
    option_views_.push_back({{o.key.data(), o.key.size()}, {o.value.data(), o.value.size()}, o.index});
  }
  spoold_init_view view{sizeof(spoold_init_view), {queue_.data(), queue_.size()}, option_views_.data(),
                        option_views_.size(),       log_context,                   log,
                        static_cast<std::uint32_t>(chain_length)};
  error_text err;
  if (entry_->init(instance_, &view, &err.buffer) != 0) {
    return make_error("plugin '" + name_ + "' (" + path_ + ") refused to start for queue '" + queue + "': " + err.str());
  }
  return {};
}

handle_outcome loaded_plugin::handle(const spoold_task_view& task) {
  error_text err;
  handle_outcome out;
  out.status = entry_->handle(instance_, &task, &err.buffer);
  if (out.status == SPOOLD_HANDLE_THREW || out.status == SPOOLD_HANDLE_FAILED) {
    out.threw = out.status == SPOOLD_HANDLE_THREW;
    out.failed = out.status == SPOOLD_HANDLE_FAILED;
    out.error = err.str();
    if (out.error.empty()) out.error = "handle() threw an exception with an empty message";
  } else if (out.status == static_cast<std::int32_t>(Status::Retry) ||
             out.status == static_cast<std::int32_t>(Status::Fail)) {
    out.error = err.str();
  }
  return out;
}

result<void> check_plugin_trust(const std::string& path) {
  std::error_code ec;
  const auto real = std::filesystem::canonical(path, ec);
  if (ec) return make_error("plugin " + path + " cannot be resolved: " + ec.message());
  if (auto r = check_owner_and_mode(real.parent_path().string(), "plugin folder"); !r) return r;
  if (auto r = check_owner_and_mode(real.string(), "plugin file"); !r) return r;
  struct stat st {};
  if (::stat(real.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
    return make_error("refusing plugin " + path + ": not a regular file");
  }
  return {};
}

result<std::unique_ptr<loaded_plugin>> load_plugin(const host_config& host, const std::string& name) {
  const std::string path = plugin_path(host, name);
  if (auto trusted = check_plugin_trust(path); !trusted) return trusted.err();
  boost::dll::shared_library library;
  try {
    library.load(path, boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local);
  } catch (const std::exception& e) {
    return make_error("plugin '" + name + "' (" + path + ") cannot be loaded: " + e.what());
  }
  if (!library.has(SPOOLD_ENTRY_SYMBOL)) {
    return make_error("plugin '" + name + "' (" + path + ") exports no " SPOOLD_ENTRY_SYMBOL
                      "(): is SPOOLD_PLUGIN(YourClass) in one of its .cpp files?");
  }
  const spoold_plugin_v1* entry = nullptr;
  try {
    entry = library.get<const spoold_plugin_v1*()>(SPOOLD_ENTRY_SYMBOL)();
  } catch (const std::exception& e) {
    return make_error("plugin '" + name + "' (" + path + "): calling " SPOOLD_ENTRY_SYMBOL "() failed: " + e.what());
  }
  if (entry == nullptr) {
    return make_error("plugin '" + name + "' (" + path + "): " SPOOLD_ENTRY_SYMBOL "() returned null");
  }
  if (entry->abi_version != SPOOLD_ABI_VERSION) {
    return make_error("plugin '" + name + "' (" + path + ") was built for ABI " + std::to_string(entry->abi_version) +
                      ", this host speaks ABI " + std::to_string(SPOOLD_ABI_VERSION) +
                      ": rebuild it against this host's plugin_api");
  }
  if (entry->struct_size < sizeof(spoold_plugin_v1)) {
    return make_error("plugin '" + name + "' (" + path + ") has an entry of " + std::to_string(entry->struct_size) +
                      " bytes, expected " + std::to_string(sizeof(spoold_plugin_v1)) +
                      ": rebuild it against this host's plugin_api");
  }
  if (entry->create == nullptr || entry->init == nullptr || entry->handle == nullptr || entry->destroy == nullptr) {
    return make_error("plugin '" + name + "' (" + path + ") has a null function in its entry: rebuild it with SPOOLD_PLUGIN()");
  }
  error_text err;
  void* instance = entry->create(&err.buffer);
  if (instance == nullptr) {
    return make_error("plugin '" + name + "' (" + path + ") could not create its instance: " + err.str());
  }
  return std::make_unique<loaded_plugin>(name, path, std::move(library), entry, instance);
}

}  // namespace spoold

// Loads a plugin .so with the host's own loader (spoold::load_plugin: trust,
// Boost.DLL, the entry and ABI checks, create), then drives init/handle
// through the C thunks with a task and options made by hand, so that the
// plugin tests see the raw codes and error text a plugin returns.
#pragma once

#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <spoold/plugin.hpp>

#include "plugin_loader.hpp"

namespace spoold::test {

namespace detail {
inline std::filesystem::path test_binary_dir() {
  return std::filesystem::read_symlink("/proc/self/exe").parent_path();
}

inline std::filesystem::path dir_from_env(const char* variable, const std::filesystem::path& fallback) {
  const char* value = std::getenv(variable);
  return value != nullptr && *value != '\0' ? std::filesystem::path(value) : fallback;
}
}  // namespace detail

// build/plugins: $SPOOLD_PLUGIN_DIR, else found from the test binary, which
// is one folder below build/ (build/bin/ or build/tests/).
inline std::filesystem::path shipped_plugin_path(const std::string& name) {
  return detail::dir_from_env("SPOOLD_PLUGIN_DIR", detail::test_binary_dir() / ".." / "plugins") /
         ("lib" + name + ".so");
}

// build/tests/plugins/out: $SPOOLD_TEST_PLUGIN_DIR, else found from the test binary.
inline std::filesystem::path fixture_plugin_path(const std::string& name) {
  return detail::dir_from_env("SPOOLD_TEST_PLUGIN_DIR",
                              detail::test_binary_dir() / ".." / "tests" / "plugins" / "out") /
         ("lib" + name + ".so");
}

struct option {
  std::string key;
  std::string value;
  std::int32_t index = -1;  // -1 for a scalar, else the position in an array
};

struct task_spec {
  std::string id = "uwsgi_spoolfile_on_test_1_1_1_1_1";
  std::string queue = "q";
  unsigned attempt = 0;
  std::vector<std::pair<std::string, std::string>> args;
  std::string body;
};

// A Status value, SPOOLD_HANDLE_THREW, or for init 0 / -1; with the text the
// thunk wrote to the error buffer.
struct outcome {
  std::int32_t code;
  std::string error;
};

struct log_line {
  std::int32_t level;
  std::string text;
};

// One plugin instance, created from the entry of a shipped or fixture plugin.
class plugin_instance {
 public:
  explicit plugin_instance(const std::filesystem::path& path) : loaded_(load(path)) {
    entry_ = &loaded_->entry();
    instance_ = loaded_->instance();
  }
  plugin_instance(const plugin_instance&) = delete;
  plugin_instance& operator=(const plugin_instance&) = delete;

  // The options must outlive the instance, as the host's do, so they are
  // kept here.
  // chain_length: how many plugins the host says share these options.
  outcome init(std::vector<option> options, const std::string& queue = "q", std::uint32_t chain_length = 1) {
    options_ = std::move(options);
    queue_ = queue;
    views_.clear();
    for (const option& o : options_) {
      views_.push_back(spoold_option{{o.key.data(), o.key.size()}, {o.value.data(), o.value.size()}, o.index});
    }
    const spoold_init_view view{sizeof(spoold_init_view), {queue_.data(), queue_.size()}, views_.data(),
                                views_.size(),            this,                          &plugin_instance::sink,
                                chain_length};
    char buffer[4096];
    spoold_error_buffer error{buffer, sizeof buffer, 0};
    const std::int32_t code = entry_->init(instance_, &view, &error);
    return {code, std::string(buffer, error.size)};
  }

  outcome handle(const task_spec& task) {
    std::vector<spoold_arg> args;
    for (const auto& [key, value] : task.args) {
      args.push_back(spoold_arg{{key.data(), key.size()}, {value.data(), value.size()}});
    }
    const spoold_task_view view{sizeof(spoold_task_view),
                                task.attempt,
                                {task.id.data(), task.id.size()},
                                {task.queue.data(), task.queue.size()},
                                args.data(),
                                args.size(),
                                {task.body.data(), task.body.size()}};
    char buffer[4096];
    spoold_error_buffer error{buffer, sizeof buffer, 0};
    const std::int32_t code = entry_->handle(instance_, &view, &error);
    return {code, std::string(buffer, error.size)};
  }

  const std::vector<log_line>& logs() const { return logs_; }

 private:
  static void sink(void* context, std::int32_t level, const char* message, std::size_t size) {
    static_cast<plugin_instance*>(context)->logs_.push_back(log_line{level, std::string(message, size)});
  }

  // The host's loader takes a plugin folder and a name: build/plugins and
  // "dispatch" for build/plugins/libdispatch.so.
  static std::unique_ptr<loaded_plugin> load(const std::filesystem::path& path) {
    if (!std::filesystem::exists(path)) {
      throw std::runtime_error(path.string() + " does not exist: build the plugins first (cmake --build build), or "
                               "point SPOOLD_PLUGIN_DIR / SPOOLD_TEST_PLUGIN_DIR at them");
    }
    host_config host;
    host.plugin_dir = path.parent_path().string();
    std::string name = path.stem().string();
    if (name.rfind("lib", 0) == 0) name.erase(0, 3);
    auto loaded = load_plugin(host, name);
    if (!loaded) throw std::runtime_error(loaded.err().message);
    return std::move(*loaded);
  }

  std::unique_ptr<loaded_plugin> loaded_;  // destroys the instance, then unloads
  const spoold_plugin_v1* entry_ = nullptr;
  void* instance_ = nullptr;
  std::vector<option> options_;
  std::vector<spoold_option> views_;
  std::string queue_;
  std::vector<log_line> logs_;
};

constexpr std::int32_t code_of(Status s) { return static_cast<std::int32_t>(s); }

// A fresh directory under $TMPDIR, removed on destruction unless
// SPOOLD_TEST_KEEP=1.
class temp_dir {
 public:
  temp_dir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "spoold-plugin-test-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed for " + pattern);
    path_ = pattern;
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
  ~temp_dir() {
    const char* keep = std::getenv("SPOOLD_TEST_KEEP");
    if (keep == nullptr || std::string(keep) != "1") {
      std::error_code ignored;
      std::filesystem::remove_all(path_, ignored);
    }
  }
  const std::filesystem::path& path() const { return path_; }
  std::string operator/(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

// Runs body in a forked child, as a spooler process would run a plugin, and
// returns the child's pid. The child gets default signal dispositions (the
// test framework's crash handlers would otherwise report the child's
// intended crash) and exits 0 when body returns, 100 when it throws.
template <class F>
pid_t run_in_child(F body) {
  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid > 0) return pid;
  for (const int sig : {SIGSEGV, SIGABRT, SIGBUS, SIGILL, SIGFPE, SIGTERM, SIGINT}) ::signal(sig, SIG_DFL);
  try {
    body();
  } catch (...) {
    ::_exit(100);
  }
  ::_exit(0);
}

// The child's wait status, or nullopt if it is still running after timeout
// (then it is left running: kill and reap it with kill_child).
inline std::optional<int> wait_for_child(pid_t pid, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    int status = 0;
    const pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) return status;
    if (r < 0 && errno != EINTR) throw std::runtime_error("waitpid failed");
    if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

inline void kill_child(pid_t pid) {
  ::kill(pid, SIGKILL);
  int status;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
}

inline std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

inline std::vector<std::string> read_lines(const std::filesystem::path& path) {
  std::vector<std::string> lines;
  std::istringstream in(read_file(path));
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

}  // namespace spoold::test

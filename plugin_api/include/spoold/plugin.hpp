// The public API of spoold plugins.
//
// A plugin is a shared object (lib<name>.so) holding one class derived from
// spoold::Plugin and one SPOOLD_PLUGIN(Class) line. The host loads it in a
// spooler process, calls init() once with the queue's [queue.options] table,
// then handle() for every task of the queue, and acts on the Status returned.
//
// This header is self-contained: a plugin compiles with -I plugin_api/include
// and the C++20 standard library alone.
//
// What crosses the .so boundary is the C struct spoold_plugin_v1 below, not
// C++ classes: it starts with an ABI version and its own size, its function
// pointers are thunks that catch every exception, and the host checks both
// numbers before calling anything. A change to any struct in the extern "C"
// block must bump SPOOLD_ABI_VERSION, except a field appended to a struct
// that starts with its struct_size, which readers check before reading it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#define SPOOLD_ABI_VERSION 1u
#define SPOOLD_ENTRY_SYMBOL "spoold_plugin_entry"

extern "C" {

// Status values returned through the boundary. SPOOLD_HANDLE_THREW means
// the plugin's handle() threw (a Retry); SPOOLD_HANDLE_FAILED means it threw
// spoold::PermanentError (a Fail). The message is in the error buffer.
enum : std::int32_t { SPOOLD_HANDLE_THREW = INT32_MIN, SPOOLD_HANDLE_FAILED = INT32_MIN + 1 };

struct spoold_bytes {
  const char* data;
  std::size_t size;
};

struct spoold_arg {
  spoold_bytes key;
  spoold_bytes value;
};

// One task, as the host hands it to handle(). Valid only during the call.
struct spoold_task_view {
  std::uint32_t struct_size;
  std::uint32_t attempt;
  spoold_bytes id;
  spoold_bytes queue;
  const spoold_arg* args;
  std::size_t arg_count;
  spoold_bytes body;
};

// One [queue.options] entry. Nested tables are flattened to dotted keys;
// an array contributes one entry per element with index 0, 1, ...; a scalar
// has index -1. Numbers and booleans arrive as their TOML text.
struct spoold_option {
  spoold_bytes key;
  spoold_bytes value;
  std::int32_t index;
};

enum : std::int32_t {
  SPOOLD_LOG_DEBUG = 1,
  SPOOLD_LOG_INFO = 2,
  SPOOLD_LOG_WARN = 3,
  SPOOLD_LOG_ERROR = 4,
};

// What init() receives: the options and a log sink owned by the host, valid
// for the lifetime of the plugin instance. chain_length was appended after
// ABI 1 shipped: read it only when struct_size covers it.
struct spoold_init_view {
  std::uint32_t struct_size;
  spoold_bytes queue;
  const spoold_option* options;
  std::size_t option_count;
  void* log_context;
  void (*log)(void* log_context, std::int32_t level, const char* message, std::size_t size);
  // How many plugins the queue's chain has, all given these same options;
  // 0 when the host did not say.
  std::uint32_t chain_length;
};

// Error text travels back in a host-owned buffer; thunks truncate to fit.
// After handle() returned Retry or Fail, text in it is the plugin's reason
// (Task::retry/fail write it); plugins built before those existed leave it
// empty, which the host reads as "no reason given".
struct spoold_error_buffer {
  char* data;
  std::size_t capacity;
  std::size_t size;
};

struct spoold_plugin_v1 {
  std::uint32_t abi_version;  // SPOOLD_ABI_VERSION of the header the plugin was built with
  std::uint32_t struct_size;  // sizeof(spoold_plugin_v1) as the plugin saw it
  // Returns a new instance, or null with the reason in *error.
  void* (*create)(spoold_error_buffer* error);
  // Returns 0, or -1 with the reason in *error.
  std::int32_t (*init)(void* instance, const spoold_init_view* view, spoold_error_buffer* error);
  // Returns the Status value, or SPOOLD_HANDLE_THREW with the reason in *error;
  // with Retry or Fail, *error may hold the reason.
  std::int32_t (*handle)(void* instance, const spoold_task_view* task, spoold_error_buffer* error);
  void (*destroy)(void* instance);
};

typedef const spoold_plugin_v1* (*spoold_plugin_entry_fn)();
}

namespace spoold {

enum class Status : int { Fail = -3, Ok = -2, Retry = -1, Ignore = 0 };

// Thrown from handle() to fail a task at once with a reason, which the
// host records as spoold.error; `return task.fail(reason)` does the same
// without an exception. Any other exception is a Retry with its what()
// recorded.
class PermanentError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

namespace detail {
inline std::string_view view(spoold_bytes b) { return {b.data, b.size}; }

inline void write_error(spoold_error_buffer* error, std::string_view text) {
  if (error == nullptr || error->data == nullptr || error->capacity == 0) return;
  const std::size_t n = text.size() < error->capacity ? text.size() : error->capacity;
  std::memcpy(error->data, text.data(), n);
  error->size = n;
}
}  // namespace detail

// A read-only view of one task, valid during handle().
class Task {
 public:
  struct Arg {
    std::string_view key;
    std::string_view value;
  };

  // reason: where retry() and fail() leave their text for the host; null
  // (a Task made outside the host, e.g. in a plugin's own tests) drops it.
  explicit Task(const spoold_task_view& v, spoold_error_buffer* reason = nullptr) : v_(v), reason_(reason) {}

  // The task's file name, which is its id.
  std::string_view id() const { return detail::view(v_.id); }
  std::string_view queue() const { return detail::view(v_.queue); }
  // Finished tries before this one: 0 on the first try.
  unsigned attempt() const { return v_.attempt; }
  // The value of the last pair with this key (uWSGI keeps the last one too).
  std::optional<std::string_view> arg(std::string_view key) const {
    for (std::size_t i = v_.arg_count; i > 0; --i) {
      if (detail::view(v_.args[i - 1].key) == key) return detail::view(v_.args[i - 1].value);
    }
    return std::nullopt;
  }
  // All key/value pairs in file order, duplicates included.
  std::size_t arg_count() const { return v_.arg_count; }
  Arg arg_at(std::size_t i) const { return {detail::view(v_.args[i].key), detail::view(v_.args[i].value)}; }
  std::vector<Arg> args() const {
    std::vector<Arg> out;
    out.reserve(v_.arg_count);
    for (std::size_t i = 0; i < v_.arg_count; ++i) out.push_back(arg_at(i));
    return out;
  }
  // The raw bytes after the args block; may contain NULs.
  std::string_view body() const { return detail::view(v_.body); }

  // `return task.retry("smtp server busy");` retries the task later and
  // `return task.fail("no recipient");` fails it at once; the host records
  // the reason as the task's spoold.error ("plugin 'mail' returned Fail: no
  // recipient"), where `spoolctl ls`/`show` show it. Returning the bare
  // Status records no reason. The last call before handle() returns wins.
  // Reasons longer than the host's buffer (4 KiB) are cut at the end.
  Status retry(std::string_view reason) const {
    detail::write_error(reason_, reason);
    return Status::Retry;
  }
  Status fail(std::string_view reason) const {
    detail::write_error(reason_, reason);
    return Status::Fail;
  }

 private:
  const spoold_task_view& v_;
  spoold_error_buffer* reason_;
};

// The queue's [queue.options] table. Nested tables are dotted keys
// ("smtp.host"); numbers and booleans are their TOML text ("25", "true").
class Options {
 public:
  Options(const spoold_option* items, std::size_t count) : items_(items), count_(count) {}

  // A scalar option, or nullopt when absent or an array.
  std::optional<std::string_view> get(std::string_view key) const {
    for (std::size_t i = 0; i < count_; ++i) {
      if (items_[i].index < 0 && detail::view(items_[i].key) == key) return detail::view(items_[i].value);
    }
    return std::nullopt;
  }
  // The elements of an array option in order; empty when absent or a scalar.
  std::vector<std::string_view> list(std::string_view key) const {
    std::vector<std::string_view> out;
    for (std::size_t i = 0; i < count_; ++i) {
      if (items_[i].index >= 0 && detail::view(items_[i].key) == key) out.push_back(detail::view(items_[i].value));
    }
    return out;
  }
  bool has(std::string_view key) const {
    for (std::size_t i = 0; i < count_; ++i) {
      if (detail::view(items_[i].key) == key) return true;
    }
    return false;
  }
  // Every key once, in file order: lets a plugin refuse a mistyped option.
  std::vector<std::string_view> keys() const {
    std::vector<std::string_view> out;
    for (std::size_t i = 0; i < count_; ++i) {
      const std::string_view k = detail::view(items_[i].key);
      bool seen = false;
      for (auto o : out) seen = seen || o == k;
      if (!seen) out.push_back(k);
    }
    return out;
  }

 private:
  const spoold_option* items_;
  std::size_t count_;
};

// Writes to the host's log, tagged with the queue and the spooler's pid.
class Logger {
 public:
  // A logger that drops everything, until a real one is assigned.
  Logger() : context_(nullptr), sink_(nullptr) {}
  Logger(void* context, void (*sink)(void*, std::int32_t, const char*, std::size_t))
      : context_(context), sink_(sink) {}
  void debug(std::string_view m) const { write(SPOOLD_LOG_DEBUG, m); }
  void info(std::string_view m) const { write(SPOOLD_LOG_INFO, m); }
  void warn(std::string_view m) const { write(SPOOLD_LOG_WARN, m); }
  void error(std::string_view m) const { write(SPOOLD_LOG_ERROR, m); }

 private:
  void write(std::int32_t level, std::string_view m) const {
    if (sink_ != nullptr) sink_(context_, level, m.data(), m.size());
  }
  void* context_;
  void (*sink_)(void*, std::int32_t, const char*, std::size_t);
};

// What a plugin receives once, before its first task.
struct InitContext {
  std::string_view queue;
  Options options;
  Logger log;
  // The plugins in the queue's chain (1: this one alone; 0: an older host
  // did not say). They share one options table, so in a chain an option
  // this plugin does not know may be another plugin's.
  unsigned chain_length = 0;
};

// Base class of every plugin. One instance per spooler process.
// init() may throw to refuse the options: the spooler then exits with the
// message and the host reports it. handle() returns a Status, or
// task.retry(reason) / task.fail(reason) to record why; it may also throw:
// that is a Retry with the exception's what() recorded as the task's error.
// When its spooler process ends (max_tasks, reload, shutdown) the instance
// is neither destroyed nor unloaded: the process _exit()s with it loaded, so
// a thread it started never runs into unmapped code. Write out what must
// last before handle() returns. The Options of init() stay valid as long as
// the instance.
class Plugin {
 public:
  virtual ~Plugin() = default;
  virtual void init(const InitContext& context) { (void)context; }
  virtual Status handle(const Task& task) = 0;
};

namespace detail {

template <class T>
struct plugin_thunks {
  static void* create(spoold_error_buffer* error) noexcept {
    try {
      return static_cast<Plugin*>(new T());
    } catch (const std::exception& e) {
      write_error(error, e.what());
    } catch (...) {
      write_error(error, "constructor threw a non-standard exception");
    }
    return nullptr;
  }
  static std::int32_t init(void* instance, const spoold_init_view* v, spoold_error_buffer* error) noexcept {
    try {
      const bool has_chain = v->struct_size >= offsetof(spoold_init_view, chain_length) + sizeof(v->chain_length);
      InitContext context{view(v->queue), Options(v->options, v->option_count), Logger(v->log_context, v->log),
                          has_chain ? v->chain_length : 0u};
      static_cast<Plugin*>(instance)->init(context);
      return 0;
    } catch (const std::exception& e) {
      write_error(error, e.what());
    } catch (...) {
      write_error(error, "init() threw a non-standard exception");
    }
    return -1;
  }
  static std::int32_t handle(void* instance, const spoold_task_view* v, spoold_error_buffer* error) noexcept {
    try {
      return static_cast<std::int32_t>(static_cast<Plugin*>(instance)->handle(Task(*v, error)));
    } catch (const PermanentError& e) {
      write_error(error, e.what());
      return SPOOLD_HANDLE_FAILED;
    } catch (const std::exception& e) {
      write_error(error, e.what());
    } catch (...) {
      write_error(error, "handle() threw a non-standard exception");
    }
    return SPOOLD_HANDLE_THREW;
  }
  static void destroy(void* instance) noexcept { delete static_cast<Plugin*>(instance); }
};

}  // namespace detail
}  // namespace spoold

// Exports the plugin's entry point. Use once, in one .cpp of the plugin.
#define SPOOLD_PLUGIN(T)                                                                                \
  extern "C" __attribute__((visibility("default"))) const spoold_plugin_v1* spoold_plugin_entry() {     \
    static const spoold_plugin_v1 entry = {                                                             \
        SPOOLD_ABI_VERSION,          sizeof(spoold_plugin_v1),           &::spoold::detail::plugin_thunks<T>::create, \
        &::spoold::detail::plugin_thunks<T>::init, &::spoold::detail::plugin_thunks<T>::handle,            \
        &::spoold::detail::plugin_thunks<T>::destroy};                                                  \
    return &entry;                                                                                      \
  }

// A header-only C++ face of client.h: a task you fill in, and enqueue()
// that returns the task id or throws spoold::client::enqueue_error.
//
//   spoold::client::task t;
//   t.arg("type", "mail").body(json).delay(std::chrono::seconds(30));
//   std::string id = spoold::client::enqueue("/srv/spool/mail", t);
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <string_view>

#include "spoold/client.h"

namespace spoold::client {

// A failed call, with its SPOOLD_CLIENT_* code and the library's message.
class enqueue_error : public std::runtime_error {
 public:
  enqueue_error(int code, const std::string& message) : std::runtime_error(message), code_(code) {}
  int code() const noexcept { return code_; }

 private:
  int code_;
};

namespace detail {
inline void check(int code, const char* what) {
  if (code == SPOOLD_CLIENT_ENOMEM) throw std::bad_alloc();
  if (code != SPOOLD_CLIENT_OK) {
    throw enqueue_error(code, std::string(what) + ": " + spoold_client_strerror(code));
  }
}
struct builder_deleter {
  void operator()(spoold_task_builder* b) const noexcept { spoold_task_builder_free(b); }
};
}  // namespace detail

// One task to write; reusable, each enqueue() writes a new file.
class task {
 public:
  task() : builder_(spoold_task_builder_new()) {
    if (!builder_) throw std::bad_alloc();
  }

  task& arg(std::string_view key, std::string_view value) {
    detail::check(spoold_task_builder_add_arg(builder_.get(), key.data(), key.size(), value.data(), value.size()),
                  "spoold task arg (the key must not be empty)");
    return *this;
  }
  task& body(std::string_view bytes) {
    detail::check(spoold_task_builder_set_body(builder_.get(), bytes.data(), bytes.size()), "spoold task body");
    return *this;
  }
  // Due at a wall-clock instant (nanosecond precision).
  task& at(std::chrono::system_clock::time_point when) {
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(when.time_since_epoch()).count();
    detail::check(spoold_task_builder_set_at_ns(builder_.get(), static_cast<std::int64_t>(ns)),
                  "spoold task at (the instant must be after 1970 and before 2262)");
    return *this;
  }
  // Due this long after enqueue() (millisecond precision).
  task& delay(std::chrono::milliseconds d) {
    if (d.count() < 0) throw enqueue_error(SPOOLD_CLIENT_EINVAL, "spoold task delay: the delay is negative");
    detail::check(spoold_task_builder_set_delay_ms(builder_.get(), static_cast<std::uint64_t>(d.count())),
                  "spoold task delay");
    return *this;
  }
  task& priority(unsigned n) {
    detail::check(spoold_task_builder_set_priority(builder_.get(), n), "spoold task priority (at most 999999999)");
    return *this;
  }
  task& sync(bool on) {
    detail::check(spoold_task_builder_set_sync(builder_.get(), on ? 1 : 0), "spoold task sync");
    return *this;
  }
  task& modes(unsigned file_mode, unsigned dir_mode) {
    detail::check(spoold_task_builder_set_modes(builder_.get(), file_mode, dir_mode), "spoold task modes");
    return *this;
  }

  const spoold_task_builder* get() const noexcept { return builder_.get(); }

 private:
  std::unique_ptr<spoold_task_builder, detail::builder_deleter> builder_;
};

// Writes t into queue_dir and returns the task id.
inline std::string enqueue(const std::string& queue_dir, const task& t) {
  char id[SPOOLD_CLIENT_ID_MAX];
  char err[1024];
  const int code = spoold_enqueue(queue_dir.c_str(), t.get(), id, sizeof id, err, sizeof err);
  if (code == SPOOLD_CLIENT_ENOMEM) throw std::bad_alloc();
  if (code != SPOOLD_CLIENT_OK) throw enqueue_error(code, err[0] != '\0' ? err : spoold_client_strerror(code));
  return id;
}

}  // namespace spoold::client

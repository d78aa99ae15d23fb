// The C boundary of the producer library: every entry catches everything, so
// no C++ exception ever unwinds into a C caller, and turns failures into a
// SPOOLD_CLIENT_* code plus a message.
#include "spoold/client.h"

#include <cerrno>
#include <cmath>
#include <cstring>
#include <exception>
#include <limits>
#include <new>
#include <optional>
#include <string>

#include "enqueue_task.hpp"
#include "posix.hpp"
#include "spool_file.hpp"

struct spoold_task_builder {
  spoold::task_request request;
  // Turned into an instant when the task is enqueued, not when it is set.
  std::optional<std::uint64_t> delay_ms;
};

namespace {

// The largest delay that keeps now + delay within the host's range of `at`.
constexpr std::uint64_t k_max_delay_ms = static_cast<std::uint64_t>(spoold::k_max_at_seconds) * 1000;

void copy_text(char* out, std::size_t cap, const std::string& text) {
  if (out == nullptr || cap == 0) return;
  const std::size_t n = text.size() < cap - 1 ? text.size() : cap - 1;
  std::memcpy(out, text.data(), n);
  out[n] = '\0';
}

int fail(char* err_out, std::size_t err_cap, int code, const std::string& message) {
  copy_text(err_out, err_cap, message);
  return code;
}

int code_of_check(int err) { return err == E2BIG ? SPOOLD_CLIENT_ETOOBIG : SPOOLD_CLIENT_EINVAL; }

template <class F>
int guarded(F&& f) noexcept {
  try {
    return f();
  } catch (const std::bad_alloc&) {
    return SPOOLD_CLIENT_ENOMEM;
  } catch (...) {
    return SPOOLD_CLIENT_EIO;
  }
}

}  // namespace

extern "C" {

spoold_task_builder* spoold_task_builder_new(void) { return new (std::nothrow) spoold_task_builder(); }

void spoold_task_builder_free(spoold_task_builder* builder) { delete builder; }

int spoold_task_builder_add_arg(spoold_task_builder* builder, const char* key, size_t key_len, const char* value,
                                size_t value_len) {
  if (builder == nullptr || key == nullptr || key_len == 0 || (value == nullptr && value_len != 0)) {
    return SPOOLD_CLIENT_EINVAL;
  }
  return guarded([&] {
    spoold::owned_arg arg;
    arg.key.assign(key, key_len);
    if (value_len != 0) arg.value.assign(value, value_len);
    builder->request.args.push_back(std::move(arg));
    return SPOOLD_CLIENT_OK;
  });
}

int spoold_task_builder_set_body(spoold_task_builder* builder, const void* body, size_t body_len) {
  if (builder == nullptr || (body == nullptr && body_len != 0)) return SPOOLD_CLIENT_EINVAL;
  return guarded([&] {
    if (body_len == 0) {
      builder->request.body.clear();
    } else {
      builder->request.body.assign(static_cast<const char*>(body), body_len);
    }
    return SPOOLD_CLIENT_OK;
  });
}

int spoold_task_builder_set_at(spoold_task_builder* builder, double unix_seconds) {
  if (builder == nullptr || !std::isfinite(unix_seconds) || unix_seconds < 0 ||
      unix_seconds > static_cast<double>(spoold::k_max_at_seconds)) {
    return SPOOLD_CLIENT_EINVAL;
  }
  return spoold_task_builder_set_at_ns(builder, static_cast<std::int64_t>(std::llround(unix_seconds * 1e9)));
}

int spoold_task_builder_set_at_ns(spoold_task_builder* builder, int64_t unix_ns) {
  if (builder == nullptr || unix_ns < 0 || unix_ns / 1'000'000'000 > spoold::k_max_at_seconds) {
    return SPOOLD_CLIENT_EINVAL;
  }
  builder->request.at_ns = unix_ns;
  builder->delay_ms.reset();
  return SPOOLD_CLIENT_OK;
}

int spoold_task_builder_set_delay_ms(spoold_task_builder* builder, uint64_t delay_ms) {
  if (builder == nullptr || delay_ms > k_max_delay_ms) return SPOOLD_CLIENT_EINVAL;
  builder->delay_ms = delay_ms;
  builder->request.at_ns.reset();
  return SPOOLD_CLIENT_OK;
}

int spoold_task_builder_set_priority(spoold_task_builder* builder, unsigned priority) {
  if (builder == nullptr || priority > spoold::k_max_priority) return SPOOLD_CLIENT_EINVAL;
  builder->request.priority = priority;
  return SPOOLD_CLIENT_OK;
}

int spoold_task_builder_set_sync(spoold_task_builder* builder, int sync) {
  if (builder == nullptr) return SPOOLD_CLIENT_EINVAL;
  builder->request.sync = sync != 0;
  return SPOOLD_CLIENT_OK;
}

int spoold_task_builder_set_modes(spoold_task_builder* builder, unsigned file_mode, unsigned dir_mode) {
  if (builder == nullptr || file_mode > 07777 || dir_mode > 07777) return SPOOLD_CLIENT_EINVAL;
  builder->request.file_mode = file_mode;
  builder->request.dir_mode = dir_mode;
  return SPOOLD_CLIENT_OK;
}

int spoold_enqueue(const char* queue_dir, const spoold_task_builder* builder, char* id_out, size_t id_cap,
                   char* err_out, size_t err_cap) {
  copy_text(err_out, err_cap, "");
  if (queue_dir == nullptr || queue_dir[0] == '\0') {
    return fail(err_out, err_cap, SPOOLD_CLIENT_EINVAL, "spoold_enqueue: queue_dir is NULL or empty");
  }
  if (builder == nullptr) return fail(err_out, err_cap, SPOOLD_CLIENT_EINVAL, "spoold_enqueue: builder is NULL");
  if (id_out == nullptr && id_cap != 0) {
    return fail(err_out, err_cap, SPOOLD_CLIENT_EINVAL, "spoold_enqueue: id_out is NULL but id_cap is not 0");
  }
  try {
    spoold::task_request request = builder->request;
    if (builder->delay_ms) {
      const auto delay_ns = static_cast<std::int64_t>(*builder->delay_ms) * 1'000'000;
      const std::int64_t now = spoold::now_ns();
      if (now > std::numeric_limits<std::int64_t>::max() - delay_ns) {
        return fail(err_out, err_cap, SPOOLD_CLIENT_EINVAL,
                    "spoold_enqueue: a delay of " + std::to_string(*builder->delay_ms) + " ms is out of range");
      }
      request.at_ns = now + delay_ns;
    }
    if (auto checked = spoold::check_task(request); !checked) {
      return fail(err_out, err_cap, code_of_check(checked.err().code), checked.err().message);
    }
    const std::string id = spoold::make_task_name();
    if (id_out != nullptr && id.size() + 1 > id_cap) {
      return fail(err_out, err_cap, SPOOLD_CLIENT_ERANGE,
                  "spoold_enqueue: id_out has " + std::to_string(id_cap) + " bytes, the task id needs " +
                      std::to_string(id.size() + 1) + ": use SPOOLD_CLIENT_ID_MAX; nothing was written");
    }
    auto written = spoold::enqueue_task(queue_dir, request, id);
    if (!written) {
      const int code = written.err().code == ENOMEM ? SPOOLD_CLIENT_ENOMEM : SPOOLD_CLIENT_EIO;
      return fail(err_out, err_cap, code, written.err().message);
    }
    copy_text(id_out, id_cap, id);
    return SPOOLD_CLIENT_OK;
  } catch (const std::bad_alloc&) {
    return fail(err_out, err_cap, SPOOLD_CLIENT_ENOMEM, "spoold_enqueue: out of memory");
  } catch (const std::exception& e) {
    return fail(err_out, err_cap, SPOOLD_CLIENT_EIO, std::string("spoold_enqueue: ") + e.what());
  } catch (...) {
    return fail(err_out, err_cap, SPOOLD_CLIENT_EIO, "spoold_enqueue: unknown failure");
  }
}

const char* spoold_client_strerror(int code) {
  switch (code) {
    case SPOOLD_CLIENT_OK: return "success";
    case SPOOLD_CLIENT_EINVAL: return "invalid argument";
    case SPOOLD_CLIENT_ETOOBIG: return "the arguments are over 65535 bytes: put large values in the body";
    case SPOOLD_CLIENT_EIO: return "the task could not be written";
    case SPOOLD_CLIENT_ENOMEM: return "out of memory";
    case SPOOLD_CLIENT_ERANGE: return "the id buffer is too small";
    default: return "unknown spoold client error code";
  }
}

}  // extern "C"

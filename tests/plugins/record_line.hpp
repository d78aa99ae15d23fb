// The line the recording fixtures append for every call, so end-to-end tests
// can count tries and check what arrived:
//
//   <id> attempt=<n> pid=<pid> <key>=<value>... body_len=<n>[ body_fnv1a=<16 hex>] t=<unix seconds>
//
// t is the wall-clock time handle() was called, with microseconds
// ("1732800000.123456"), for tests of delays and backoff; it comes last so
// a parser that keeps the last value of a key is not fooled by an arg "t".
// Args are in file order, duplicates included. Bytes of keys and values
// outside printable ASCII, and space and backslash, are written as \xHH so a
// line stays one line of space-separated fields.
//
// Fixtures whose init() misbehaves record each init() call instead:
//
//   init queue=<queue> pid=<pid>
#pragma once

#include <time.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>
#include <string_view>

#include <spoold/plugin.hpp>

#include "common/append_file.hpp"

namespace spoold::fixtures {

inline void append_escaped(std::string& out, std::string_view bytes) {
  static constexpr char hex[] = "0123456789abcdef";
  for (const char c : bytes) {
    const auto b = static_cast<unsigned char>(c);
    if (b > 0x20 && b < 0x7F && b != '\\') {
      out += c;
    } else {
      out += "\\x";
      out += hex[b >> 4];
      out += hex[b & 0xF];
    }
  }
}

// FNV-1a, 64 bits: cheap to recompute in a Python test.
inline std::string fnv1a_64_hex(std::string_view bytes) {
  std::uint64_t hash = 0xcbf29ce484222325ULL;
  for (const char c : bytes) {
    hash ^= static_cast<unsigned char>(c);
    hash *= 0x100000001b3ULL;
  }
  static constexpr char hex[] = "0123456789abcdef";
  std::string out(16, '0');
  for (int i = 15; i >= 0; --i) {
    out[static_cast<std::size_t>(i)] = hex[hash & 0xF];
    hash >>= 4;
  }
  return out;
}

// The current wall-clock time as "<seconds>.<microseconds>".
inline std::string unix_time_now() {
  timespec now{};
  ::clock_gettime(CLOCK_REALTIME, &now);
  char text[32];
  const int n = std::snprintf(text, sizeof text, "%lld.%06ld", static_cast<long long>(now.tv_sec), now.tv_nsec / 1000);
  return std::string(text, n > 0 ? static_cast<std::size_t>(n) : 0);
}

// The record of one handle() call that started at called_at (from
// unix_time_now()), without the trailing newline.
inline std::string format_record(const Task& task, const std::string& called_at) {
  std::string line;
  append_escaped(line, task.id());
  line += " attempt=" + std::to_string(task.attempt());
  line += " pid=" + std::to_string(::getpid());
  for (std::size_t i = 0; i < task.arg_count(); ++i) {
    const Task::Arg arg = task.arg_at(i);
    line += ' ';
    append_escaped(line, arg.key);
    line += '=';
    append_escaped(line, arg.value);
  }
  line += " body_len=" + std::to_string(task.body().size());
  if (task.arg("body_sha") == "1") line += " body_fnv1a=" + fnv1a_64_hex(task.body());
  line += " t=" + called_at;
  return line;
}

// With the option record_file set, appends the init line for this call.
inline void record_init(const InitContext& context) {
  if (const auto file = context.options.get("record_file")) {
    spoold::plugins::append_to_file(std::filesystem::absolute(std::string(*file)).string(),
                                    "init queue=" + std::string(context.queue) + " pid=" + std::to_string(::getpid()) +
                                        "\n");
  }
}

}  // namespace spoold::fixtures

#include "spool_file.hpp"

#include <fcntl.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <cstdio>
#include <random>

#include "posix.hpp"

namespace spoold {

namespace {

std::uint16_t read_u16(std::string_view bytes, std::size_t at) {
  return static_cast<std::uint16_t>(static_cast<unsigned char>(bytes[at]) |
                                    (static_cast<unsigned>(static_cast<unsigned char>(bytes[at + 1])) << 8));
}

void append_u16(std::string& out, std::size_t v) {
  out.push_back(static_cast<char>(v & 0xff));
  out.push_back(static_cast<char>((v >> 8) & 0xff));
}

parse_result fail(parse_problem p, std::string reason) {
  parse_result r;
  r.failure = {p, std::move(reason)};
  return r;
}

}  // namespace

std::optional<std::string_view> spool_view::arg(std::string_view key) const {
  for (auto it = args.rbegin(); it != args.rend(); ++it) {
    if (it->key == key) return it->value;
  }
  return std::nullopt;
}

parse_result parse_spool_file(std::string_view bytes) {
  if (bytes.empty()) return fail(parse_problem::incomplete, "the file is empty");
  if (bytes.size() < k_header_size) {
    return fail(parse_problem::incomplete,
                "the file is " + std::to_string(bytes.size()) + " bytes, shorter than the 4-byte header");
  }
  const std::size_t args_size = read_u16(bytes, 1);
  const std::size_t available = bytes.size() - k_header_size;
  if (args_size > available) {
    return fail(parse_problem::incomplete, "the header announces " + std::to_string(args_size) +
                                               " bytes of args but the file has " + std::to_string(available));
  }
  spool_view view;
  const std::string_view block = bytes.substr(k_header_size, args_size);
  std::size_t pos = 0;
  while (pos < block.size()) {
    if (block.size() - pos < 2) {
      return fail(parse_problem::malformed, "a key length is cut off at args offset " + std::to_string(pos));
    }
    const std::size_t key_len = read_u16(block, pos);
    pos += 2;
    if (key_len == 0) return fail(parse_problem::malformed, "an empty key at args offset " + std::to_string(pos - 2));
    if (block.size() - pos < key_len) {
      return fail(parse_problem::malformed, "a key of " + std::to_string(key_len) + " bytes runs past the args block");
    }
    const std::string_view key = block.substr(pos, key_len);
    pos += key_len;
    if (block.size() - pos < 2) {
      return fail(parse_problem::malformed, "the value length of a key is cut off at args offset " + std::to_string(pos));
    }
    const std::size_t value_len = read_u16(block, pos);
    pos += 2;
    if (block.size() - pos < value_len) {
      return fail(parse_problem::malformed,
                  "a value of " + std::to_string(value_len) + " bytes runs past the args block");
    }
    view.args.push_back({key, block.substr(pos, value_len)});
    pos += value_len;
  }
  view.body = bytes.substr(k_header_size + args_size);
  parse_result r;
  r.task = std::move(view);
  return r;
}

result<std::string> encode_spool_file(const std::vector<owned_arg>& args, std::string_view body) {
  std::size_t args_size = 0;
  for (const auto& a : args) {
    if (a.key.empty()) return make_error("an argument has an empty key: the uWSGI format needs at least one byte");
    if (a.key.size() > k_max_args_size || a.value.size() > k_max_args_size) {
      return make_error("argument '" + a.key.substr(0, 64) + "' is over 64 KiB: put large values in the body");
    }
    args_size += 4 + a.key.size() + a.value.size();
  }
  if (args_size > k_max_args_size) {
    return make_error("the arguments take " + std::to_string(args_size) +
                      " bytes, over the 65535 the uWSGI format allows: put large values in the body");
  }
  std::string out;
  out.reserve(k_header_size + args_size + body.size());
  out.push_back(static_cast<char>(k_modifier1_spool));
  append_u16(out, args_size);
  out.push_back('\0');
  for (const auto& a : args) {
    append_u16(out, a.key.size());
    out += a.key;
    append_u16(out, a.value.size());
    out += a.value;
  }
  out.append(body.data(), body.size());
  return out;
}

std::vector<owned_arg> rewrite_bookkeeping(const spool_view& task, unsigned attempt,
                                           std::optional<std::string_view> error_text,
                                           std::optional<std::int64_t> failed_at) {
  std::vector<owned_arg> out;
  out.reserve(task.args.size() + 3);
  for (const auto& a : task.args) {
    if (a.key == k_key_attempt || a.key == k_key_error || a.key == k_key_failed_at) continue;
    out.push_back({std::string(a.key), std::string(a.value)});
  }
  out.push_back({std::string(k_key_attempt), std::to_string(attempt)});
  if (error_text) {
    // Keep the error short enough that the args block stays within 64 KiB.
    constexpr std::size_t k_max_error = 2048;
    std::string text(error_text->substr(0, k_max_error));
    out.push_back({std::string(k_key_error), std::move(text)});
  }
  if (failed_at) out.push_back({std::string(k_key_failed_at), std::to_string(*failed_at)});
  return out;
}

namespace {

// The bookkeeping rewrite_bookkeeping() adds besides the history, at most:
// spoold.error (2048 bytes), spoold.attempt and spoold.failed_at.
constexpr std::size_t k_bookkeeping_room = (4 + 12 + 2048) + (4 + 14 + 7) + (4 + 16 + 20);

std::optional<std::int64_t> decimal(std::string_view text) {
  std::int64_t v = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || p != text.data() + text.size()) return std::nullopt;
  return v;
}

std::optional<std::uint64_t> try_number(std::string_view key) {
  if (key.substr(0, k_key_try_prefix.size()) != k_key_try_prefix) return std::nullopt;
  const std::string_view digits = key.substr(k_key_try_prefix.size());
  std::uint64_t n = 0;
  auto [p, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), n);
  if (digits.empty() || ec != std::errc() || p != digits.data() + digits.size() || n == 0) return std::nullopt;
  return n;
}

}  // namespace

std::string format_try_value(const try_record& record) {
  std::string out = "attempt=" + std::to_string(record.attempt);
  if (record.started_ms) out += " started_ms=" + std::to_string(*record.started_ms);
  if (record.pid) out += " pid=" + std::to_string(*record.pid);
  if (record.duration_ms) out += " duration_ms=" + std::to_string(*record.duration_ms);
  out += " counted_ms=" + std::to_string(record.counted_ms);
  out += " status=" + record.status;
  out += " error=";
  out.append(record.error, 0, k_max_try_error);
  return out;
}

std::optional<try_record> parse_try(std::string_view key, std::string_view value) {
  auto number = try_number(key);
  if (!number) return std::nullopt;
  try_record r;
  r.number = *number;
  bool have_attempt = false;
  bool have_counted = false;
  while (!value.empty()) {
    const std::size_t eq = value.find('=');
    if (eq == std::string_view::npos) return std::nullopt;
    const std::string_view name = value.substr(0, eq);
    if (name == "error") {
      r.error = std::string(value.substr(eq + 1));
      break;
    }
    const std::size_t end = value.find(' ', eq);
    const std::string_view field = value.substr(eq + 1, end == std::string_view::npos ? end : end - eq - 1);
    value = end == std::string_view::npos ? std::string_view() : value.substr(end + 1);
    if (name == "status") {
      if (field.empty()) return std::nullopt;
      r.status = std::string(field);
      continue;
    }
    auto v = decimal(field);
    if (!v) return std::nullopt;
    if (name == "attempt") {
      if (*v < 0 || *v > 1'000'000) return std::nullopt;
      r.attempt = static_cast<unsigned>(*v);
      have_attempt = true;
    } else if (name == "started_ms") {
      r.started_ms = *v;
    } else if (name == "pid") {
      r.pid = *v;
    } else if (name == "duration_ms") {
      r.duration_ms = *v;
    } else if (name == "counted_ms") {
      r.counted_ms = *v;
      have_counted = true;
    }  // a field a later version adds is skipped
  }
  if (!have_attempt || !have_counted || r.status.empty()) return std::nullopt;
  return r;
}

std::vector<try_record> tries_of(const spool_view& task) {
  std::vector<try_record> out;
  for (const auto& a : task.args) {
    if (auto r = parse_try(a.key, a.value)) out.push_back(std::move(*r));
  }
  std::sort(out.begin(), out.end(), [](const try_record& a, const try_record& b) { return a.number < b.number; });
  return out;
}

std::vector<spool_arg> args_with_try(const spool_view& task, try_record record, owned_arg& held) {
  std::vector<std::uint64_t> numbers;
  std::size_t other_size = 0;  // the args that stay, history aside
  for (const auto& a : task.args) {
    if (a.key == k_key_attempt || a.key == k_key_error || a.key == k_key_failed_at) continue;
    if (auto n = try_number(a.key)) {
      numbers.push_back(*n);
    } else {
      other_size += 4 + a.key.size() + a.value.size();
    }
  }
  std::sort(numbers.begin(), numbers.end());
  record.number = numbers.empty() ? 1 : numbers.back() + 1;
  held.key = std::string(k_key_try_prefix) + std::to_string(record.number);
  held.value = format_try_value(record);
  // The newest entries that fit, the new one first; the oldest go.
  std::size_t budget = k_max_args_size > other_size + k_bookkeeping_room
                           ? k_max_args_size - other_size - k_bookkeeping_room
                           : 0;
  const std::size_t new_size = 4 + held.key.size() + held.value.size();
  const bool add_new = new_size <= budget;
  if (add_new) budget -= new_size;
  std::uint64_t oldest_kept = record.number;
  std::size_t kept = add_new ? 1 : 0;
  for (auto it = numbers.rbegin(); it != numbers.rend() && kept < k_max_tries_kept; ++it) {
    std::size_t size = 0;
    for (const auto& a : task.args) {
      if (try_number(a.key) == *it) size = 4 + a.key.size() + a.value.size();
    }
    if (size > budget) break;
    budget -= size;
    oldest_kept = *it;
    ++kept;
  }
  std::vector<spool_arg> out;
  out.reserve(task.args.size() + 1);
  for (const auto& a : task.args) {
    if (auto n = try_number(a.key); n && *n < oldest_kept) continue;
    out.push_back(a);
  }
  if (add_new) out.push_back({held.key, held.value});
  return out;
}

unsigned attempt_of(const spool_view& task) {
  auto v = task.arg(k_key_attempt);
  if (!v) return 0;
  unsigned n = 0;
  auto [p, ec] = std::from_chars(v->data(), v->data() + v->size(), n);
  if (ec != std::errc() || p != v->data() + v->size()) return 0;
  // Bounded so that attempt + 1 never wraps (max_attempts is at most 10^6).
  return std::min(n, 1'000'000u);
}

std::optional<std::int64_t> at_of(const spool_view& task) {
  auto v = task.arg("at");
  if (!v || v->empty()) return std::nullopt;
  std::string_view whole = *v;
  std::string_view frac;
  if (auto dot = whole.find('.'); dot != std::string_view::npos) {
    frac = whole.substr(dot + 1);
    whole = whole.substr(0, dot);
  }
  std::int64_t seconds = 0;
  auto [p, ec] = std::from_chars(whole.data(), whole.data() + whole.size(), seconds);
  if (ec != std::errc() || p != whole.data() + whole.size()) return std::nullopt;
  // uWSGI ignores at <= 0; past 2262 the instant does not fit in int64 nanoseconds.
  if (seconds <= 0 || seconds > 9'223'372'035) return std::nullopt;
  std::int64_t nanos = 0;
  std::int64_t scale = 100'000'000;
  for (char c : frac) {
    if (c < '0' || c > '9') return std::nullopt;
    nanos += (c - '0') * scale;
    scale /= 10;
  }
  return seconds * 1'000'000'000 + nanos;
}

bool is_task_name(std::string_view name) {
  if (name.size() <= k_task_prefix.size() || name.substr(0, k_task_prefix.size()) != k_task_prefix) return false;
  return name.find('/') == std::string_view::npos && name.size() < 256;
}

bool is_priority_name(std::string_view name) {
  if (name.empty() || name.size() > 9) return false;
  for (char c : name) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

std::string make_task_name() {
  static std::atomic<unsigned long long> counter{0};
  char host[256] = {};
  if (::gethostname(host, sizeof(host) - 1) != 0 || host[0] == '\0') std::snprintf(host, sizeof(host), "localhost");
  for (char* c = host; *c != '\0'; ++c) {
    if (*c == '/' || *c == '_') *c = '-';
  }
  thread_local std::mt19937 rng(std::random_device{}());
  timeval tv{};
  ::gettimeofday(&tv, nullptr);
  const unsigned long long n = ++counter;
  return std::string(k_task_prefix) + host + "_" + std::to_string(::getpid()) + "_" + std::to_string(n) + "_" +
         std::to_string(rng() & 0x7fffffff) + "_" + std::to_string(tv.tv_sec) + "_" + std::to_string(tv.tv_usec);
}

result<void> write_file_atomically(int dirfd, const std::string& dir_name, const std::string& name,
                                   std::string_view bytes, const write_options& options) {
  const std::string temp = std::string(k_temp_prefix) + name;
  const std::string temp_path = dir_name + "/" + temp;
  auto fd = open_at(dirfd, temp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, options.mode);
  if (!fd) return make_error(fd.err().message + " in " + dir_name, fd.err().code);
  auto cleanup_on_error = [&](const error& e) -> result<void> {
    // Best effort: a temp left here is removed by the host's stale-temp sweep.
    (void)unlink_at(dirfd, temp);
    return e;
  };
  // The mode exactly as configured: open() left out what the umask masks.
  if (auto m = set_mode(fd->get(), static_cast<mode_t>(options.mode), temp_path); !m) return cleanup_on_error(m.err());
  if (auto w = write_all(fd->get(), bytes.data(), bytes.size(), temp_path); !w) return cleanup_on_error(w.err());
  if (options.mtime_ns) {
    if (auto t = set_mtime(fd->get(), *options.mtime_ns, temp_path); !t) return cleanup_on_error(t.err());
  }
  if (options.sync) {
    if (auto s = fsync_fd(fd->get(), temp_path); !s) return cleanup_on_error(s.err());
  }
  fd->reset();
  if (auto r = rename_at(dirfd, temp, dirfd, name); !r) {
    return cleanup_on_error(make_error(r.err().message + " in " + dir_name, r.err().code));
  }
  if (options.sync) {
    if (auto s = fsync_fd(dirfd, dir_name); !s) {
      // A rewrite in place keeps its new version (the old one is gone
      // either way); a new name is taken back, so the caller's undo holds.
      if (options.new_name) (void)unlink_at(dirfd, name);
      return s;
    }
  }
  return {};
}

}  // namespace spoold

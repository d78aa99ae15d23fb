// fx_record: the well-behaved fixture. Every call appends a record line (see
// record_line.hpp) ending in " result=<ok|retry|fail|ignore|the int>" to
// record_file, then returns what the task asks for. Ignored tasks (only_type)
// are recorded too, so tests can count offers.
//
// Options:  record_file (required), only_type (return Ignore unless arg type matches),
//           start_file: when set, every call first appends its record line without
//           " result=" there, before any sleep or wait, so a test can wait until a task is
//           inside handle() instead of guessing how long that takes
// Args:     status = ok|retry|fail|ignore (default ok), or code = <any int>, which wins;
//           sleep_ms = <n> to sleep first; wait_for = <path> to block until that path exists
//           (a gate the test opens; after sleep_ms; at most 60 s, then it throws, a Retry);
//           body_sha = 1 to record body_fnv1a; alloc_mb = <n> to allocate n MiB, write every
//           page and keep it for the life of the process (a leak, for tests of max_rss)
#include <spoold/plugin.hpp>

#include <charconv>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <vector>

#include "common/append_file.hpp"
#include "record_line.hpp"

namespace {

template <class T>
T parse_int(std::string_view text, const char* what) {
  T value{};
  const char* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (text.empty() || ec != std::errc() || ptr != end) {
    throw std::runtime_error(std::string("fx_record: the arg ") + what + " is not an integer: '" + std::string(text) +
                             "'");
  }
  return value;
}

std::string result_name(std::int32_t code) {
  switch (code) {
    case static_cast<std::int32_t>(spoold::Status::Ok): return "ok";
    case static_cast<std::int32_t>(spoold::Status::Retry): return "retry";
    case static_cast<std::int32_t>(spoold::Status::Fail): return "fail";
    case static_cast<std::int32_t>(spoold::Status::Ignore): return "ignore";
    default: return std::to_string(code);
  }
}

std::int32_t requested_code(const spoold::Task& task) {
  if (const auto code = task.arg("code")) return parse_int<std::int32_t>(*code, "code");
  const std::string_view status = task.arg("status").value_or("ok");
  if (status == "ok") return static_cast<std::int32_t>(spoold::Status::Ok);
  if (status == "retry") return static_cast<std::int32_t>(spoold::Status::Retry);
  if (status == "fail") return static_cast<std::int32_t>(spoold::Status::Fail);
  if (status == "ignore") return static_cast<std::int32_t>(spoold::Status::Ignore);
  throw std::runtime_error("fx_record: the arg status must be ok, retry, fail or ignore, not '" + std::string(status) +
                           "'");
}

// Blocks until path exists. Polls every millisecond: a test opens the gate
// once, and a fixture must not depend on inotify to notice it.
void wait_for_path(const std::string& path) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  std::error_code ec;
  while (!std::filesystem::exists(path, ec)) {
    if (std::chrono::steady_clock::now() >= deadline) {
      throw std::runtime_error("fx_record: the gate '" + path + "' (arg wait_for) did not appear within 60 s");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

class fx_record final : public spoold::Plugin {
 public:
  void init(const spoold::InitContext& context) override {
    const auto file = context.options.get("record_file");
    if (!file || file->empty()) throw std::runtime_error("fx_record needs the option record_file");
    record_file_ = std::filesystem::absolute(std::string(*file)).string();
    if (const auto type = context.options.get("only_type")) only_type_ = std::string(*type);
    if (const auto start = context.options.get("start_file")) {
      if (start->empty()) throw std::runtime_error("fx_record: the option start_file is empty");
      start_file_ = std::filesystem::absolute(std::string(*start)).string();
    }
  }

  spoold::Status handle(const spoold::Task& task) override {
    const std::string called_at = spoold::fixtures::unix_time_now();
    if (start_file_) spoold::plugins::append_to_file(*start_file_, spoold::fixtures::format_record(task, called_at) + "\n");
    std::int32_t code = static_cast<std::int32_t>(spoold::Status::Ignore);
    if (!only_type_ || task.arg("type") == *only_type_) {
      code = requested_code(task);
      if (const auto ms = task.arg("sleep_ms")) {
        std::this_thread::sleep_for(std::chrono::milliseconds(parse_int<std::int64_t>(*ms, "sleep_ms")));
      }
      if (const auto gate = task.arg("wait_for")) wait_for_path(std::string(*gate));
      if (const auto mb = task.arg("alloc_mb")) {
        kept_.emplace_back(parse_int<std::size_t>(*mb, "alloc_mb") << 20, '\1');  // written, so resident
      }
    }
    const std::string record = spoold::fixtures::format_record(task, called_at) + " result=" + result_name(code);
    spoold::plugins::append_to_file(record_file_, record + "\n");
    return static_cast<spoold::Status>(code);
  }

 private:
  std::string record_file_;
  std::optional<std::string> only_type_;
  std::optional<std::string> start_file_;
  std::vector<std::vector<char>> kept_;
};

}  // namespace

SPOOLD_PLUGIN(fx_record)

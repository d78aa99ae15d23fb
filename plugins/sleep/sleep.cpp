// sleep: waits, then returns Ok. For demos, and for tests of concurrency,
// timeouts and graceful shutdown.
//
// Args:     ms = "250"        milliseconds to sleep, decimal digits, 0 to 3600000
// Options:  default_ms = 0    used when a task has no ms arg (default 0);
//                              any other option is refused at start (when
//                              sleep is the queue's only plugin)
//
// An ms that is not a number in range fails the task at once (a Fail whose
// reason the host records as spoold.error): retrying would not change it.
#include <spoold/plugin.hpp>

#include <charconv>
#include <chrono>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>

#include "common/known_options.hpp"

namespace {

constexpr std::uint64_t max_ms = 3'600'000;  // one hour

// Plain decimal digits in 0..max_ms; no sign, space or fraction, so that a
// producer's mistake is reported instead of half-read.
std::optional<std::uint64_t> parse_ms(std::string_view text) {
  std::uint64_t value = 0;
  const char* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (text.empty() || ec != std::errc() || ptr != end || value > max_ms) return std::nullopt;
  return value;
}

class sleep_plugin final : public spoold::Plugin {
 public:
  void init(const spoold::InitContext& context) override {
    spoold::plugins::refuse_unknown_options("sleep", context, {"default_ms"});
    if (context.options.has("default_ms")) {
      const auto text = context.options.get("default_ms");
      const auto ms = text ? parse_ms(*text) : std::nullopt;
      if (!ms) {
        throw std::runtime_error("the option default_ms must be an integer from 0 to 3600000 (milliseconds), "
                                 "not '" + std::string(text.value_or("an array")) + "'");
      }
      default_ms_ = *ms;
    }
  }

  spoold::Status handle(const spoold::Task& task) override {
    std::uint64_t ms = default_ms_;
    if (const auto text = task.arg("ms")) {
      const auto parsed = parse_ms(*text);
      if (!parsed) {
        return task.fail("the arg ms must be an integer from 0 to 3600000 (milliseconds), not '" + std::string(*text) +
                         "'");
      }
      ms = *parsed;
    }
    // sleep_for resumes after a signal handler runs, so SIGTERM from the host
    // lets the sleep finish as a task in hand should.
    std::this_thread::sleep_for(std::chrono::milliseconds(static_cast<std::int64_t>(ms)));
    return spoold::Status::Ok;
  }

 private:
  std::uint64_t default_ms_ = 0;
};

}  // namespace

SPOOLD_PLUGIN(sleep_plugin)

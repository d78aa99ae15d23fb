// fx_slow_init: an init() that takes its time (a database that does not
// answer), for the tests of init_timeout and of a reload's plugin check.
// handle() records the task like fx_record (result=ok) and returns Ok.
//
// Options:  init_ms = <n>      sleep this long in init()
//           block_first = PATH only the first process to create PATH sleeps;
//                              the others start at once
//           init_fail = TEXT   after the sleep, init() throws TEXT
//           record_file = PATH where handle() appends its lines
#include <spoold/plugin.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <charconv>
#include <chrono>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>

#include "common/append_file.hpp"
#include "record_line.hpp"

namespace {

class fx_slow_init final : public spoold::Plugin {
 public:
  void init(const spoold::InitContext& context) override {
    if (const auto file = context.options.get("record_file")) {
      record_file_ = std::filesystem::absolute(std::string(*file)).string();
    }
    long ms = 0;
    if (const auto text = context.options.get("init_ms")) {
      const auto [ptr, ec] = std::from_chars(text->data(), text->data() + text->size(), ms);
      if (ec != std::errc() || ptr != text->data() + text->size()) throw std::runtime_error("init_ms is not a number");
    }
    bool sleep = true;
    if (const auto marker = context.options.get("block_first")) {
      const int fd = ::open(std::string(*marker).c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
      sleep = fd >= 0;
      if (fd >= 0) ::close(fd);
    }
    if (sleep) std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    if (const auto fail = context.options.get("init_fail")) throw std::runtime_error(std::string(*fail));
  }

  spoold::Status handle(const spoold::Task& task) override {
    if (record_file_) {
      spoold::plugins::append_to_file(
          *record_file_, spoold::fixtures::format_record(task, spoold::fixtures::unix_time_now()) + " result=ok\n");
    }
    return spoold::Status::Ok;
  }

 private:
  std::optional<std::string> record_file_;
};

}  // namespace

SPOOLD_PLUGIN(fx_slow_init)

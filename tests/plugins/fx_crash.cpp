// fx_crash: misbehaves as the arg how says, after appending a record line
// (see record_line.hpp) to the option record_file when it is set, so tests
// can count the tries that crashed.
//
//   how = segv         dies of SIGSEGV          how = abort   abort()
//   how = exit         _exit(3)                 how = hang    never returns
//   how = throw        throws std::runtime_error("fixture threw: boom")
//   how = throw_other  throws an int (not a std::exception)
//   how = code         returns the unknown status 7
//   how = permanent    throws spoold::PermanentError (a Fail with a reason)
//   how = segv_locked  forks a child that keeps the task's lock (it shares the
//                      spooler's open file) until the file named by the arg
//                      release exists, then dies of SIGSEGV
//   anything else      returns Ok
#include <spoold/plugin.hpp>

#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include "common/append_file.hpp"
#include "die_of.hpp"
#include "record_line.hpp"

namespace {

class fx_crash final : public spoold::Plugin {
 public:
  void init(const spoold::InitContext& context) override {
    if (const auto file = context.options.get("record_file")) {
      record_file_ = std::filesystem::absolute(std::string(*file)).string();
    }
  }

  spoold::Status handle(const spoold::Task& task) override {
    if (record_file_) {
      spoold::plugins::append_to_file(*record_file_,
                                      spoold::fixtures::format_record(task, spoold::fixtures::unix_time_now()) + "\n");
    }
    const std::string_view how = task.arg("how").value_or("");
    if (how == "segv") spoold::fixtures::die_of(SIGSEGV);
    if (how == "abort") std::abort();
    if (how == "exit") ::_exit(3);
    if (how == "hang") {
      for (;;) ::pause();
    }
    if (how == "throw") throw std::runtime_error("fixture threw: boom");
    if (how == "throw_other") throw 42;
    if (how == "permanent") throw spoold::PermanentError("fixture gave up: permanent");
    if (how == "code") return static_cast<spoold::Status>(7);
    if (how == "segv_locked") {
      const std::string release(task.arg("release").value_or(""));
      if (::fork() == 0) {
        for (int i = 0; i < 6000 && ::access(release.c_str(), F_OK) != 0; ++i) ::usleep(10'000);
        ::_exit(0);
      }
      spoold::fixtures::die_of(SIGSEGV);
    }
    return spoold::Status::Ok;
  }

 private:
  std::optional<std::string> record_file_;
};

}  // namespace

SPOOLD_PLUGIN(fx_crash)

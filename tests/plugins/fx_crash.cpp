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
#include "record_line.hpp"

namespace {

// Dies of sig even if the process installed a handler or blocked it.
[[noreturn]] void die_of(int sig) {
  ::signal(sig, SIG_DFL);
  sigset_t set;
  ::sigemptyset(&set);
  ::sigaddset(&set, sig);
  ::sigprocmask(SIG_UNBLOCK, &set, nullptr);
  ::raise(sig);
  ::_exit(128 + sig);
}

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
    if (how == "segv") die_of(SIGSEGV);
    if (how == "abort") std::abort();
    if (how == "exit") ::_exit(3);
    if (how == "hang") {
      for (;;) ::pause();
    }
    if (how == "throw") throw std::runtime_error("fixture threw: boom");
    if (how == "throw_other") throw 42;
    if (how == "permanent") throw spoold::PermanentError("fixture gave up: permanent");
    if (how == "code") return static_cast<spoold::Status>(7);
    return spoold::Status::Ok;
  }

 private:
  std::optional<std::string> record_file_;
};

}  // namespace

SPOOLD_PLUGIN(fx_crash)

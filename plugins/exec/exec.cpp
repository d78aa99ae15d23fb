// exec: runs a command for every task, the way to plug any script or
// program into a queue.
//
// Options:
//   command = ["/usr/local/bin/send-mail", "--quiet"]   argv, run directly (PATH is searched)
//   command = "send-mail --quiet >> /var/log/mail.log"  or one string, run with /bin/sh -c
//
// The command gets
//   - the spooler's environment plus, for each task arg, SPOOLD_ARG_<KEY>
//     (the key uppercased, every byte that is not a letter or digit turned
//     into '_'; the last of several args with one name wins), SPOOLD_TASK_ID,
//     SPOOLD_QUEUE and SPOOLD_ATTEMPT (0 on the first try);
//   - the task body on stdin; the spooler's stdout; its stderr is captured.
//
// Exit 0 → Ok. Exit 75 (EX_TEMPFAIL) → Retry with "command exited with 75
// (EX_TEMPFAIL): <stderr>" recorded as the task's error. Any other exit or a
// signal → Retry with "command exited with code N: <last 2 KiB of stderr>"
// (or "command killed by signal N (SIGX): ..."). Options other than command
// are refused at start when exec is the queue's only plugin. There is no timeout here: the queue's timeout kills the
// spooler, and the command dies with it.
// An arg value holding a NUL byte cannot be passed in the environment: such
// a task fails at once (send binary data in the body).
#include <spoold/plugin.hpp>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "child_process.hpp"
#include "common/known_options.hpp"

extern char** environ;

namespace {

constexpr int exit_tempfail = 75;  // EX_TEMPFAIL of <sysexits.h>

// The names exec sets; the same names inherited from the spooler are
// dropped so a task never sees an arg it does not have.
constexpr std::string_view arg_prefix = "SPOOLD_ARG_";
constexpr std::string_view own_names[] = {"SPOOLD_TASK_ID", "SPOOLD_QUEUE", "SPOOLD_ATTEMPT"};

std::string env_name_for(std::string_view key) {
  std::string name(arg_prefix);
  for (const char c : key) {
    if (c >= 'a' && c <= 'z') {
      name += static_cast<char>(c - 'a' + 'A');
    } else if ((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) {
      name += c;
    } else {
      name += '_';
    }
  }
  return name;
}

bool is_own_name(std::string_view entry) {
  const std::string_view name = entry.substr(0, entry.find('='));
  if (name.starts_with(arg_prefix)) return true;
  for (const std::string_view own : own_names) {
    if (name == own) return true;
  }
  return false;
}

std::string trimmed(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' ' || text.back() == '\t')) {
    text.pop_back();
  }
  return text.empty() ? "(no stderr output)" : text;
}

class exec_plugin final : public spoold::Plugin {
 public:
  exec_plugin() : log_(nullptr, nullptr) {}

  void init(const spoold::InitContext& context) override {
    log_ = context.log;
    spoold::plugins::refuse_unknown_options("exec", context, {"command"});
    if (const auto line = context.options.get("command")) {
      if (line->empty()) throw std::runtime_error("the option command is empty: give a command to run");
      argv_ = {"/bin/sh", "-c", std::string(*line)};
    } else {
      for (const std::string_view word : context.options.list("command")) argv_.emplace_back(word);
      if (argv_.empty()) {
        throw std::runtime_error("exec needs the option command: add command = [\"/path/to/program\", \"arg\"] (run "
                                 "directly) or command = \"shell command line\" to [queue.options] of queue '" +
                                 std::string(context.queue) + "'");
      }
      if (argv_.front().empty()) throw std::runtime_error("the first element of the option command is empty");
    }
    for (const std::string& word : argv_) {
      if (word.find('\0') != std::string::npos) {
        throw std::runtime_error("the option command holds a NUL character, which no command line can carry");
      }
    }
    // The body is written to a pipe the command may close unread; without
    // this, that EPIPE would arrive as SIGPIPE and kill the spooler. The
    // child gets the default disposition back before exec.
    struct sigaction ignore {};
    ignore.sa_handler = SIG_IGN;
    ::sigaction(SIGPIPE, &ignore, nullptr);

    std::string shown;
    for (const std::string& word : argv_) shown += (shown.empty() ? "" : " ") + word;
    log_.info("running '" + shown + "' for each task");
  }

  spoold::Status handle(const spoold::Task& task) override {
    std::vector<std::string> env;
    if (const std::optional<std::string> bad_key = build_environment(task, env)) {
      return task.fail("the value of arg '" + *bad_key +
                       "' holds a NUL byte, which an environment variable cannot carry; send binary data in the body");
    }

    spoold::exec::command_result result{};
    try {
      result = spoold::exec::run_command(argv_, env, task.body());
    } catch (const std::runtime_error& e) {
      return task.retry(e.what());  // the command could not be started
    }
    const int status = result.wait_status;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
      if (!result.stderr_tail.empty()) log_.debug("task " + std::string(task.id()) + ": " + result.stderr_tail);
      return spoold::Status::Ok;
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == exit_tempfail) {
      return task.retry("command exited with 75 (EX_TEMPFAIL): " + trimmed(result.stderr_tail));
    }
    if (WIFSIGNALED(status)) {
      const int sig = WTERMSIG(status);
      const char* abbreviation = ::sigabbrev_np(sig);
      return task.retry("command killed by signal " + std::to_string(sig) + " (SIG" +
                        (abbreviation != nullptr ? abbreviation : "?") + "): " + trimmed(result.stderr_tail));
    }
    return task.retry("command exited with code " + std::to_string(WEXITSTATUS(status)) + ": " +
                      trimmed(result.stderr_tail));
  }

 private:
  // Fills env with the spooler's environment and the task's variables.
  // Returns the key of an arg whose value cannot be passed, if any.
  static std::optional<std::string> build_environment(const spoold::Task& task, std::vector<std::string>& env) {
    std::map<std::string, std::string> own;
    for (std::size_t i = 0; i < task.arg_count(); ++i) {
      const spoold::Task::Arg arg = task.arg_at(i);
      if (arg.value.find('\0') != std::string_view::npos) return std::string(arg.key);
      own[env_name_for(arg.key)] = arg.value;
    }
    own["SPOOLD_TASK_ID"] = task.id();
    own["SPOOLD_QUEUE"] = task.queue();
    own["SPOOLD_ATTEMPT"] = std::to_string(task.attempt());

    for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
      if (!is_own_name(*entry)) env.emplace_back(*entry);
    }
    for (const auto& [name, value] : own) env.push_back(name + '=' + value);
    return std::nullopt;
  }

  spoold::Logger log_;
  std::vector<std::string> argv_;
};

}  // namespace

SPOOLD_PLUGIN(exec_plugin)

// log_writer: the smallest useful plugin, and the one to copy when you write
// your own. It is the uWSGI tutorial's worker in C++: for every task it
// appends one line to a text file,
//
//   <local time YYYY-MM-DD HH:MM:SS>:<the task's body, or its arg "body">
//
// Options ([queue.options] in the TOML file):
//   log_file = "path"   required. A relative path resolves against the working
//                       directory of the spooler process when the plugin
//                       starts; spoold runs its spoolers in the TOML file's
//                       folder, so in practice against that folder.
//                       The file is created at start if missing (mode 0666
//                       less the umask); its folder must exist.
// Any other option is refused at start, so a typo is not silently ignored
// (unless the queue has a chain of plugins, which share one options table).
//
// Producer side:  spoolctl -c spoold.toml enqueue tasks_a --body "hello"
//            or:  spoolctl -c spoold.toml enqueue tasks_a body=hello
#include <spoold/plugin.hpp>

#include <ctime>
#include <filesystem>
#include <stdexcept>
#include <string>

#include "common/append_file.hpp"
#include "common/known_options.hpp"
#include "common/local_time.hpp"

namespace {

// One instance lives in each spooler process of the queue, so members need
// no locking: the host calls handle() for one task at a time.
class log_writer final : public spoold::Plugin {
 public:
  // Called once per spooler process, before the first task. Throwing here
  // refuses the options: the spooler exits and the host logs the message,
  // so say which option is wrong and what would fix it.
  void init(const spoold::InitContext& context) override {
    spoold::plugins::refuse_unknown_options("log_writer", context, {"log_file"});
    const auto log_file = context.options.get("log_file");
    if (!log_file || log_file->empty()) {
      throw std::runtime_error("log_writer needs the option log_file: add log_file = \"/path/to/file.log\" to "
                               "[queue.options] of queue '" + std::string(context.queue) + "'");
    }
    // Resolved once, so a later chdir() in the process cannot move the log.
    log_file_ = std::filesystem::absolute(std::string(*log_file)).string();
    // Opening the file now turns a typo in the path into a start-up error
    // instead of a retry of every task.
    spoold::plugins::check_appendable(log_file_);
    ::tzset();
    context.log.info("appending to " + log_file_);
  }

  // The task view is only valid during this call: copy what you keep.
  // Returning Ok deletes the task. task.retry(reason) tries it again later
  // (task.fail(reason) would give up at once), with the reason saved in the
  // task file as spoold.error: right for a full disk or a file system that
  // went away. An exception escaping handle() is a Retry too, with what()
  // as the reason.
  spoold::Status handle(const spoold::Task& task) override {
    std::string_view text = task.body();
    if (text.empty()) text = task.arg("body").value_or("");

    // The whole line goes out in one write() on an O_APPEND descriptor, so
    // the lines of concurrent spooler processes never interleave.
    std::string line = spoold::plugins::local_time_now();
    line += ':';
    line += text;
    line += '\n';
    try {
      spoold::plugins::append_to_file(log_file_, line);
    } catch (const std::runtime_error& e) {
      return task.retry(e.what());  // names the file and the errno text
    }
    return spoold::Status::Ok;
  }

 private:
  std::string log_file_;
};

}  // namespace

// Exports spoold_plugin_entry, the one symbol the host looks up. Exactly once
// per plugin, in one .cpp.
SPOOLD_PLUGIN(log_writer)

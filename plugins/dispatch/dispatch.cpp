// dispatch: the uWSGI tutorial's worker_dispatcher. A task carries a JSON body
//
//   {"type": "a", "message": "text"}
//
// and is routed by its type. Each type this instance handles appends
//
//   <local time YYYY-MM-DD HH:MM:SS>:<type>:<message>
//
// to log_file; a type it does not handle returns Ignore, so the next plugin
// of the queue's chain gets the task. With an empty body the type and
// message come from the args "type" and "message" (uWSGI producers often
// send args only).
//
// Options:
//   log_file = "path"        required; resolved and created at start as for
//                            log_writer (relative: the spooler's working directory)
//   types    = ["a", "b"]    the types handled here (default ["a", "b"])
// Any other option is refused at start when dispatch is alone in its queue
// (a chain's plugins share one options table).
//
// A body that is not such a JSON object, or a task without a type, fails at
// once (a Fail whose reason the host records as spoold.error): retrying
// would not fix it. A failed write to log_file is a Retry naming the file.
// A message may be any JSON scalar: strings are written decoded, numbers and
// booleans as written, null as nothing. Other keys are ignored.
#include <spoold/plugin.hpp>

#include <ctime>
#include <filesystem>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>

#include "common/append_file.hpp"
#include "common/known_options.hpp"
#include "common/local_time.hpp"
#include "flat_json.hpp"

namespace {

struct message {
  std::string type;
  std::string text;
};

class dispatcher final : public spoold::Plugin {
 public:
  // Needs a default constructor for SPOOLD_PLUGIN; the logger arrives in init().
  dispatcher() : log_(nullptr, nullptr) {}

  void init(const spoold::InitContext& context) override {
    log_ = context.log;
    spoold::plugins::refuse_unknown_options("dispatch", context, {"log_file", "types"});
    const auto log_file = context.options.get("log_file");
    if (!log_file || log_file->empty()) {
      throw std::runtime_error("dispatch needs the option log_file: add log_file = \"/path/to/file.log\" to "
                               "[queue.options] of queue '" + std::string(context.queue) + "'");
    }
    log_file_ = std::filesystem::absolute(std::string(*log_file)).string();
    spoold::plugins::check_appendable(log_file_);

    if (context.options.get("types")) {
      throw std::runtime_error("the option types must be an array of strings, e.g. types = [\"a\", \"b\"]");
    }
    // An empty array reaches the plugin as no option at all, hence the default.
    const auto types = context.options.list("types");
    if (types.empty()) {
      types_ = {"a", "b"};
    } else {
      for (const std::string_view type : types) {
        if (type.empty()) throw std::runtime_error("the option types holds an empty string; remove it");
        types_.emplace(type);
      }
    }
    ::tzset();

    std::string names;
    for (const std::string& type : types_) names += (names.empty() ? "" : ", ") + type;
    log_.info("handling types [" + names + "], appending to " + log_file_);
  }

  spoold::Status handle(const spoold::Task& task) override {
    std::string reason;
    const std::optional<message> m = read_message(task, reason);
    if (!m) return task.fail(reason);
    if (types_.find(m->type) == types_.end()) return spoold::Status::Ignore;

    std::string line = spoold::plugins::local_time_now();
    line += ':';
    line += m->type;
    line += ':';
    line += m->text;
    line += '\n';
    try {
      spoold::plugins::append_to_file(log_file_, line);
    } catch (const std::runtime_error& e) {
      return task.retry(e.what());
    }
    return spoold::Status::Ok;
  }

 private:
  // The task's type and message, or nullopt with the reason why it has none.
  static std::optional<message> read_message(const spoold::Task& task, std::string& reason) {
    if (task.body().empty()) {
      const auto type = task.arg("type");
      if (!type || type->empty()) {
        reason = "no type: send a JSON body {\"type\": ..., \"message\": ...} or an arg type=...";
        return std::nullopt;
      }
      return message{std::string(*type), std::string(task.arg("message").value_or(""))};
    }

    spoold::dispatch::flat_object object;
    try {
      object = spoold::dispatch::parse_flat_object(task.body());
    } catch (const spoold::dispatch::json_error& e) {
      reason = "the body is not a JSON object {\"type\": ..., \"message\": ...}: " + std::string(e.what());
      return std::nullopt;
    }
    const spoold::dispatch::json_scalar* type = object.find("type");
    if (type == nullptr || type->kind != spoold::dispatch::json_kind::string || type->text.empty()) {
      reason = "the JSON body has no \"type\" string";
      return std::nullopt;
    }
    message m{type->text, {}};
    const spoold::dispatch::json_scalar* text = object.find("message");
    if (text != nullptr && text->kind != spoold::dispatch::json_kind::null) m.text = text->text;
    return m;
  }

  spoold::Logger log_;
  std::string log_file_;
  std::set<std::string, std::less<>> types_;
};

}  // namespace

SPOOLD_PLUGIN(dispatcher)

// hello: a plugin written and built outside the spoold tree, as a user's
// would be. It needs only <spoold/plugin.hpp> and the standard library.
//
// Options:  greeting_file = "path"   required; one line is appended per task
// Args:     name = "..."             who to greet (default "world")
#include <spoold/plugin.hpp>

#include <fstream>
#include <stdexcept>
#include <string>

namespace {

class hello final : public spoold::Plugin {
 public:
  void init(const spoold::InitContext& context) override {
    const auto file = context.options.get("greeting_file");
    if (!file) throw std::runtime_error("hello needs the option greeting_file");
    greeting_file_ = std::string(*file);
    context.log.info("greeting into " + greeting_file_);
  }

  spoold::Status handle(const spoold::Task& task) override {
    std::ofstream out(greeting_file_, std::ios::app);
    out << "hello, " << task.arg("name").value_or("world") << " from " << task.queue() << "\n";
    out.flush();
    if (!out) throw std::runtime_error("cannot append to " + greeting_file_);
    return spoold::Status::Ok;
  }

 private:
  std::string greeting_file_;
};

}  // namespace

SPOOLD_PLUGIN(hello)

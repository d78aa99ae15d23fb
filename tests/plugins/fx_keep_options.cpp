// fx_keep_options: keeps the Options of init() and reads them in every
// handle(), as plugin.hpp allows ("valid for the lifetime of the plugin
// instance"). Returns Ok when the option answer still reads "42", else a
// Fail whose reason says what it read.
//
// Options:  answer (expected "42"), anything else is kept and ignored
#include <spoold/plugin.hpp>

#include <string>

namespace {

class fx_keep_options final : public spoold::Plugin {
 public:
  fx_keep_options() : options_(nullptr, 0) {}

  void init(const spoold::InitContext& context) override { options_ = context.options; }

  spoold::Status handle(const spoold::Task& task) override {
    const auto answer = options_.get("answer");
    if (answer == "42") return spoold::Status::Ok;
    return task.fail("the option answer reads as " + (answer ? "'" + std::string(*answer) + "'" : "absent") +
                     " after init()");
  }

 private:
  spoold::Options options_;
};

}  // namespace

SPOOLD_PLUGIN(fx_keep_options)

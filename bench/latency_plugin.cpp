// bench_latency: records when each task reaches handle(), for the pickup
// latency benchmark. First thing in handle() it reads CLOCK_REALTIME and
// appends "<task id> <nanoseconds>\n" to the file named by the option
// `record_file` (one write() on an O_APPEND descriptor), then returns Ok.
#include <spoold/plugin.hpp>

#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>

namespace {

class latency_plugin final : public spoold::Plugin {
 public:
  latency_plugin() = default;
  latency_plugin(const latency_plugin&) = delete;
  latency_plugin& operator=(const latency_plugin&) = delete;
  ~latency_plugin() override {
    if (fd_ >= 0) ::close(fd_);
  }

  void init(const spoold::InitContext& context) override {
    const auto path = context.options.get("record_file");
    if (!path) throw std::runtime_error("bench_latency: the option record_file is required");
    const std::string p(*path);
    fd_ = ::open(p.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd_ < 0) throw std::runtime_error("bench_latency: cannot open " + p + ": " + std::strerror(errno));
  }

  spoold::Status handle(const spoold::Task& task) override {
    timespec ts{};
    ::clock_gettime(CLOCK_REALTIME, &ts);
    const std::int64_t ns = static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
    char line[320];
    const auto id = task.id();
    const int n = std::snprintf(line, sizeof(line), "%.*s %lld\n", static_cast<int>(id.size() > 255 ? 255 : id.size()),
                                id.data(), static_cast<long long>(ns));
    if (n > 0 && ::write(fd_, line, static_cast<std::size_t>(n)) != n) throw std::runtime_error("bench_latency: short write");
    return spoold::Status::Ok;
  }

 private:
  int fd_ = -1;
};

}  // namespace

SPOOLD_PLUGIN(latency_plugin)

// noop: the benchmark's plugin. handle() returns Ok and does nothing else,
// so a drain measures the host alone: finding, claiming and deleting tasks.
//
// Option:  count_file = "/dev/shm/..."   (optional) a file of at least 8
//          bytes; every handle() adds 1 to the little-endian u64 at offset
//          0 (one atomic add on a shared mapping, tens of nanoseconds), so
//          the benchmark can check that every task was handled exactly once.
#include <spoold/plugin.hpp>

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>

namespace {

class noop_plugin final : public spoold::Plugin {
 public:
  noop_plugin() = default;
  noop_plugin(const noop_plugin&) = delete;
  noop_plugin& operator=(const noop_plugin&) = delete;
  ~noop_plugin() override {
    if (counter_ != nullptr) ::munmap(counter_, sizeof(std::uint64_t));
  }

  void init(const spoold::InitContext& context) override {
    const auto path = context.options.get("count_file");
    if (!path) return;
    const std::string p(*path);
    const int fd = ::open(p.c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0) throw std::runtime_error("noop: cannot open count_file " + p + ": " + std::strerror(errno));
    void* mem = ::mmap(nullptr, sizeof(std::uint64_t), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    const int err = errno;
    ::close(fd);
    if (mem == MAP_FAILED) throw std::runtime_error("noop: cannot map count_file " + p + ": " + std::strerror(err));
    counter_ = static_cast<std::uint64_t*>(mem);
  }

  spoold::Status handle(const spoold::Task&) override {
    if (counter_ != nullptr) std::atomic_ref<std::uint64_t>(*counter_).fetch_add(1, std::memory_order_relaxed);
    return spoold::Status::Ok;
  }

 private:
  std::uint64_t* counter_ = nullptr;
};

}  // namespace

SPOOLD_PLUGIN(noop_plugin)

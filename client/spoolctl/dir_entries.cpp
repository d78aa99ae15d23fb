#include "dir_entries.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <memory>

#include "posix.hpp"

namespace spoold {

namespace {
struct dir_closer {
  void operator()(DIR* d) const noexcept { ::closedir(d); }
};
}  // namespace

result<std::vector<std::string>> list_names(int dirfd, const std::string& what) {
  // fdopendir takes the descriptor over, so give it a duplicate: the
  // caller's fd stays open and positioned as it was.
  auto dup = open_at(dirfd, ".", O_RDONLY | O_DIRECTORY);
  if (!dup) return make_error("list " + what + ": " + dup.err().message, dup.err().code);
  std::unique_ptr<DIR, dir_closer> dir(::fdopendir(dup->get()));
  if (!dir) return io_error("list " + what, errno);
  dup->release();
  std::vector<std::string> names;
  for (;;) {
    errno = 0;
    const dirent* entry = ::readdir(dir.get());
    if (entry == nullptr) {
      if (errno != 0) return io_error("list " + what, errno);
      break;
    }
    const std::string name = entry->d_name;
    if (name == "." || name == "..") continue;
    names.push_back(name);
  }
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace spoold

// The names in a directory, read through an fd so the caller keeps acting
// relative to the same directory it listed (no path re-resolution).
// A candidate for host/posix once the host scans queues the same way.
#pragma once

#include <string>
#include <vector>

#include "result.hpp"

namespace spoold {

// Every name in dirfd except "." and "..", sorted. what names the directory
// in messages.
result<std::vector<std::string>> list_names(int dirfd, const std::string& what);

}  // namespace spoold

// Loads every plugin a config names once, in a short-lived child process,
// so a plugin that crashes or hangs while loading cannot take the caller
// down (SPEC §5). Used by --check, at start, and before a reload.
#pragma once

#include <string>
#include <vector>

#include "config.hpp"

namespace spoold {

// Returns one message per problem; empty when every plugin loads.
std::vector<std::string> check_plugins_in_child(const config& c);

}  // namespace spoold

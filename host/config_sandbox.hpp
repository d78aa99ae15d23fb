// Reading of a [queue.sandbox] / [defaults.sandbox] table.
#pragma once

#include <string>

#include "config.hpp"
#include "config_reader.hpp"

namespace spoold {

// Reads table over out (a queue's table over the defaults' values), naming
// owner ("queue 'q'", "defaults") in every problem. base resolves relative
// paths in read and write.
void read_sandbox(config_reader& r, const toml::table& table, const std::string& owner, const std::string& base,
                  sandbox_config& out);

}  // namespace spoold

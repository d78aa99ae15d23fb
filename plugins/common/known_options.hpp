// Refusing a mistyped option at start, instead of running with its default.
#pragma once

#include <spoold/plugin.hpp>

#include <initializer_list>
#include <stdexcept>
#include <string>
#include <string_view>

namespace spoold::plugins {

// Throws, naming the first key of options that is not in known and listing
// the known ones: "plugin 'log_writer': unknown option 'log_fiel' (known:
// log_file)". A nested table arrives as dotted keys, which are unknown too.
inline void refuse_unknown_options(std::string_view plugin, const Options& options,
                                   std::initializer_list<std::string_view> known) {
  for (const std::string_view key : options.keys()) {
    bool found = false;
    for (const std::string_view k : known) found = found || k == key;
    if (found) continue;
    std::string list;
    for (const std::string_view k : known) {
      if (!list.empty()) list += ", ";
      list += k;
    }
    throw std::runtime_error("plugin '" + std::string(plugin) + "': unknown option '" + std::string(key) +
                             "' (known: " + list + ")");
  }
}

}  // namespace spoold::plugins

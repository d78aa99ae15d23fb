// Refusing a mistyped option at start, instead of running with its default.
#pragma once

#include <spoold/plugin.hpp>

#include <initializer_list>
#include <stdexcept>
#include <string>
#include <string_view>

namespace spoold::plugins {

// Throws, naming the first key of the options that is not in known and
// listing the known ones: "plugin 'log_writer': unknown option 'log_fiel'
// (known: log_file)". A nested table arrives as dotted keys, which are
// unknown too. Only a plugin alone in its queue refuses: in a chain the
// options are shared and a key may be another plugin's, and a host that
// does not say (chain_length 0) gets the old, lenient behaviour.
inline void refuse_unknown_options(std::string_view plugin, const InitContext& context,
                                   std::initializer_list<std::string_view> known) {
  if (context.chain_length != 1) return;
  const Options& options = context.options;
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

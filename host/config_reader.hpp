// The reading of a TOML table into config values, with every problem
// collected as file:line:col and what was expected. Shared by the parts of
// the config (config.cpp, config_sandbox.cpp); not an API.
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <toml++/toml.h>

#include "duration.hpp"

namespace spoold {

struct config_reader {
  explicit config_reader(std::string file) : file_(std::move(file)) {}
  void problem(const toml::source_region& where, const std::string& what);
  void problem(const std::string& what);
  // Reports every key of table that is not in known.
  void reject_unknown(const toml::table& table, const std::string& section, const std::set<std::string>& known);
  void read_string(const toml::table& t, const char* key, const std::string& section, std::string& out);
  void read_unsigned(const toml::table& t, const char* key, const std::string& section, unsigned& out,
                     std::int64_t min, std::int64_t max);
  void read_duration(const toml::table& t, const char* key, const std::string& section, duration& out);
  void read_mode(const toml::table& t, const char* key, const std::string& section, unsigned& out);
  void read_size(const toml::table& t, const char* key, const std::string& section, std::uint64_t& out);
  void read_nice(const toml::table& t, const char* key, const std::string& section, std::optional<int>& out);
  void read_bool(const toml::table& t, const char* key, const std::string& section, bool& out);
  // An array of strings; each one made absolute against base.
  void read_paths(const toml::table& t, const char* key, const std::string& section, const std::string& base,
                  std::vector<std::string>& out);
  static std::string type_name(const toml::node& n);

  std::string file_;
  std::vector<std::string> problems_;
};

}  // namespace spoold

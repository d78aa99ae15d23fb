#include "config_reader.hpp"

#include <filesystem>

#include "config.hpp"

namespace spoold {

void config_reader::problem(const toml::source_region& where, const std::string& what) {
  problems_.push_back(file_ + ":" + std::to_string(where.begin.line) + ":" + std::to_string(where.begin.column) +
                      ": " + what);
}

void config_reader::problem(const std::string& what) { problems_.push_back(file_ + ": " + what); }

void config_reader::reject_unknown(const toml::table& table, const std::string& section, const std::set<std::string>& known) {
  for (const auto& [key, node] : table) {
    if (known.count(std::string(key.str())) == 0) {
      std::string list;
      for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
      problem(key.source(), "unknown key '" + std::string(key.str()) + "' in " + section + " (known keys: " + list + ")");
    }
  }
}

void config_reader::read_string(const toml::table& t, const char* key, const std::string& section, std::string& out) {
  const toml::node* n = t.get(key);
  if (n == nullptr) return;
  if (auto s = n->value<std::string>()) {
    out = *s;
  } else {
    problem(n->source(), section + "." + key + " must be a string, not " + type_name(*n));
  }
}

void config_reader::read_unsigned(const toml::table& t, const char* key, const std::string& section, unsigned& out,
                         std::int64_t min, std::int64_t max) {
  const toml::node* n = t.get(key);
  if (n == nullptr) return;
  if (!n->is_integer()) {
    problem(n->source(), section + "." + key + " must be an integer, not " + type_name(*n));
    return;
  }
  const std::int64_t v = n->as_integer()->get();
  if (v < min || v > max) {
    problem(n->source(), section + "." + key + " is " + std::to_string(v) + ", expected " + std::to_string(min) +
                             " to " + std::to_string(max));
    return;
  }
  out = static_cast<unsigned>(v);
}

void config_reader::read_duration(const toml::table& t, const char* key, const std::string& section, duration& out) {
  const toml::node* n = t.get(key);
  if (n == nullptr) return;
  auto s = n->value<std::string>();
  if (!s || !n->is_string()) {
    problem(n->source(), section + "." + key + " must be a duration string such as \"250ms\", \"30s\", \"5m\" or \"1h\", not " +
                             type_name(*n));
    return;
  }
  auto d = parse_duration(*s);
  if (!d) {
    problem(n->source(), section + "." + key + " = \"" + *s +
                             "\" is not a duration: write a whole number and ms, s, m or h, such as \"250ms\" or \"30s\"");
    return;
  }
  out = *d;
}

void config_reader::read_mode(const toml::table& t, const char* key, const std::string& section, unsigned& out) {
  const toml::node* n = t.get(key);
  if (n == nullptr) return;
  std::int64_t v = -1;
  if (n->is_integer()) {
    v = n->as_integer()->get();
  } else if (auto s = n->value<std::string>(); s && n->is_string()) {
    try {
      std::size_t used = 0;
      v = std::stoll(*s, &used, 8);
      if (used != s->size()) v = -1;
    } catch (const std::exception&) {
      v = -1;
    }
  }
  if (v < 0 || v > 0777) {
    problem(n->source(), section + "." + key + " must be a file mode such as 0o700 or \"0700\"");
    return;
  }
  out = static_cast<unsigned>(v);
}

void config_reader::read_size(const toml::table& t, const char* key, const std::string& section, std::uint64_t& out) {
  const toml::node* n = t.get(key);
  if (n == nullptr) return;
  std::optional<std::uint64_t> v;
  std::string shown;
  if (n->is_integer()) {
    const std::int64_t i = n->as_integer()->get();
    if (i >= 0) v = static_cast<std::uint64_t>(i);
    shown = std::to_string(i);
  } else if (auto s = n->value<std::string>(); s && n->is_string()) {
    v = parse_size(*s);
    shown = "\"" + *s + "\"";
  } else {
    shown = type_name(*n);
  }
  if (!v) {
    problem(n->source(), section + "." + key + " = " + shown +
                             " is not a size: write a whole number of bytes with an optional K, M, G or T, such as \"512M\", "
                             "or \"0\" for no limit");
    return;
  }
  out = *v;
}

void config_reader::read_nice(const toml::table& t, const char* key, const std::string& section, std::optional<int>& out) {
  const toml::node* n = t.get(key);
  if (n == nullptr) return;
  if (!n->is_integer()) {
    problem(n->source(), section + "." + key + " must be an integer from -20 to 19, not " + type_name(*n));
    return;
  }
  const std::int64_t v = n->as_integer()->get();
  if (v < -20 || v > 19) {
    problem(n->source(), section + "." + key + " is " + std::to_string(v) +
                             ", expected -20 (most favoured) to 19 (least favoured)");
    return;
  }
  out = static_cast<int>(v);
}

std::string config_reader::type_name(const toml::node& n) {
  switch (n.type()) {
    case toml::node_type::table: return "a table";
    case toml::node_type::array: return "an array";
    case toml::node_type::string: return "a string";
    case toml::node_type::integer: return "an integer";
    case toml::node_type::floating_point: return "a float";
    case toml::node_type::boolean: return "a boolean";
    default: return "a date or time";
  }
}

void config_reader::read_bool(const toml::table& t, const char* key, const std::string& section, bool& out) {
  const toml::node* n = t.get(key);
  if (n == nullptr) return;
  if (!n->is_boolean()) {
    problem(n->source(), section + "." + key + " must be true or false, not " + type_name(*n));
    return;
  }
  out = n->as_boolean()->get();
}

void config_reader::read_paths(const toml::table& t, const char* key, const std::string& section,
                               const std::string& base, std::vector<std::string>& out) {
  const toml::node* n = t.get(key);
  if (n == nullptr) return;
  const auto* list = n->as_array();
  if (list == nullptr) {
    problem(n->source(), section + "." + key + " must be a list of paths such as [\"/srv/app\"], not " + type_name(*n));
    return;
  }
  out.clear();
  for (const auto& el : *list) {
    auto s = el.value<std::string>();
    if (!s || !el.is_string() || s->empty()) {
      problem(el.source(), section + "." + key + " entries must be non-empty path strings");
      continue;
    }
    std::filesystem::path p(*s);
    if (p.is_relative()) p = std::filesystem::path(base) / p;
    out.push_back((p.lexically_normal() / "").parent_path().string());
  }
}

}  // namespace spoold

#include "config.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <limits>
#include <set>
#include <sstream>
#include <toml++/toml.h>

#include "accounts.hpp"
#include "config_reader.hpp"
#include "config_sandbox.hpp"
#include "metrics_address.hpp"

namespace spoold {

namespace fs = std::filesystem;

namespace {

const std::set<std::string> k_queue_settings = {"processes", "max_attempts", "backoff",  "backoff_max",
                                                "timeout",   "init_timeout", "max_tasks", "dir_mode",
                                                "file_mode", "max_rss",      "nice",      "dir_group", "sandbox"};

void read_queue_settings(config_reader& r, const toml::table& t, const std::string& section, queue_config& q) {
  r.read_unsigned(t, "processes", section, q.processes, 1, 1024);
  r.read_unsigned(t, "max_attempts", section, q.max_attempts, 1, 1000000);
  r.read_duration(t, "backoff", section, q.backoff);
  r.read_duration(t, "backoff_max", section, q.backoff_max);
  r.read_duration(t, "timeout", section, q.timeout);
  r.read_duration(t, "init_timeout", section, q.init_timeout);
  r.read_unsigned(t, "max_tasks", section, q.max_tasks, 0, 1000000000);
  r.read_size(t, "max_rss", section, q.max_rss);
  r.read_nice(t, "nice", section, q.nice);
  r.read_mode(t, "dir_mode", section, q.dir_mode);
  r.read_mode(t, "file_mode", section, q.file_mode);
  r.read_string(t, "dir_group", section, q.dir_group);
}

void read_sandbox_table(config_reader& r, const toml::table& t, const std::string& owner, const std::string& base,
                        sandbox_config& out) {
  const toml::node* n = t.get("sandbox");
  if (n == nullptr) return;
  if (const auto* table = n->as_table()) {
    read_sandbox(r, *table, owner, base, out);
  } else {
    r.problem(n->source(), owner + ": sandbox must be a table: write [queue.sandbox] or [defaults.sandbox]");
  }
}

std::string scalar_text(const toml::node& n) {
  if (auto s = n.value<std::string>(); s && n.is_string()) return *s;
  if (n.is_boolean()) return n.as_boolean()->get() ? "true" : "false";
  if (n.is_integer()) return std::to_string(n.as_integer()->get());
  std::ostringstream out;
  n.visit([&](const auto& v) { out << v; });
  return out.str();
}

void flatten_options(config_reader& r, const toml::table& t, const std::string& prefix, std::vector<option_entry>& out) {
  for (const auto& [key, node] : t) {
    const std::string name = prefix.empty() ? std::string(key.str()) : prefix + "." + std::string(key.str());
    if (const auto* sub = node.as_table()) {
      flatten_options(r, *sub, name, out);
    } else if (const auto* arr = node.as_array()) {
      std::int32_t i = 0;
      for (const auto& el : *arr) {
        if (el.is_table() || el.is_array()) {
          r.problem(el.source(), "queue.options." + name + " may hold only strings, numbers and booleans");
          continue;
        }
        out.push_back({name, scalar_text(el), i++});
      }
    } else {
      out.push_back({name, scalar_text(node), -1});
    }
  }
}

std::string resolve(const fs::path& base, const std::string& p) {
  fs::path path(p);
  if (path.is_relative()) path = base / path;
  return (path.lexically_normal() / "").parent_path().string();  // no trailing slash: "a/" and "a" are one dir
}

bool valid_queue_name(const std::string& n) {
  if (n.empty() || n.size() > 64) return false;
  for (char c : n) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.')) return false;
  }
  return n != "." && n != "..";
}

// The keys of a queue with source = "redis"; q.redis stays unset when the
// url is missing or wrong (a problem is reported).
void read_redis_source(config_reader& r, const toml::table& t, const std::string& section, queue_config& q) {
  redis_source_config rc;
  rc.stream = "spoold:" + q.name;
  r.read_string(t, "url", section, rc.url_text);
  r.read_string(t, "stream", section, rc.stream);
  r.read_string(t, "group", section, rc.group);
  r.read_duration(t, "lease", section, rc.lease);
  r.read_duration(t, "batch_window", section, rc.batch_window);
  bool ok = true;
  if (const toml::node* n = t.get("stream"); n != nullptr && rc.stream.empty()) {
    r.problem(n->source(), section + ": stream is empty");
    ok = false;
  }
  if (const toml::node* n = t.get("group"); n != nullptr && rc.group.empty()) {
    r.problem(n->source(), section + ": group is empty");
    ok = false;
  }
  if (const toml::node* n = t.get("lease"); n != nullptr && rc.lease.count() < 1000) {
    r.problem(n->source(), section + ": lease = \"" + format_duration(rc.lease) +
                               "\" is too short: a host that is merely slow would lose its tasks; use 1s or more");
    ok = false;
  }
  if (const toml::node* n = t.get("batch_window"); n != nullptr && rc.batch_window * 2 > rc.lease) {
    r.problem(n->source(), section + ": batch_window = \"" + format_duration(rc.batch_window) +
                               "\" is more than half the lease (" + format_duration(rc.lease) +
                               "): entries waiting in a batch would be taken by another host as a dead one's; "
                               "use a few ms (the default is 2ms)");
    ok = false;
  }
  const toml::node* un = t.get("url");
  if (un == nullptr) {
    r.problem(t.source(), section + " has source = \"redis\" but no url: add url = \"redis://127.0.0.1:6379/0\"");
    return;
  }
  if (!un->is_string()) return;  // reported by read_string
  std::string why;
  auto url = parse_redis_url(rc.url_text, why);
  if (!url) {
    r.problem(un->source(), section + ": url = \"" + rc.url_text + "\": " + why);
    return;
  }
  rc.url = std::move(*url);
  if (ok) q.redis = std::move(rc);
}

}  // namespace

const queue_config* config::find_queue(const std::string& name) const {
  for (const auto& q : queues) {
    if (q.name == name) return &q;
  }
  return nullptr;
}

std::optional<std::uint64_t> parse_size(std::string_view text) {
  std::uint64_t value = 0;
  std::size_t i = 0;
  for (; i < text.size() && text[i] >= '0' && text[i] <= '9'; ++i) {
    const std::uint64_t digit = static_cast<std::uint64_t>(text[i] - '0');
    if (value > (std::numeric_limits<std::uint64_t>::max() - digit) / 10) return std::nullopt;
    value = value * 10 + digit;
  }
  if (i == 0) return std::nullopt;
  if (i == text.size()) return value;
  if (i + 1 != text.size()) return std::nullopt;
  unsigned shift = 0;
  switch (text[i]) {
    case 'K': case 'k': shift = 10; break;
    case 'M': case 'm': shift = 20; break;
    case 'G': case 'g': shift = 30; break;
    case 'T': case 't': shift = 40; break;
    default: return std::nullopt;
  }
  if (value > (std::numeric_limits<std::uint64_t>::max() >> shift)) return std::nullopt;
  return value << shift;
}

std::string plugin_path(const host_config& host, const std::string& plugin) {
  return (fs::path(host.plugin_dir) / ("lib" + plugin + ".so")).string();
}

config_load load_config(const std::string& path, bool check_plugins) {
  config_load out;
  std::error_code ec;
  fs::path abs = fs::absolute(path, ec);
  out.value.path = abs.lexically_normal().string();
  config_reader r(path);
  toml::table root;
  try {
    root = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    const auto& b = e.source().begin;
    if (b.line == 0) {
      r.problem("cannot read the file: " + std::string(e.description()));
    } else {
      r.problem(e.source(), std::string(e.description()));
    }
    out.problems = std::move(r.problems_);
    return out;
  }
  const fs::path base = abs.parent_path();
  config& c = out.value;
  c.host.plugin_dir = resolve(base, "plugins");
  c.host.base_dir = base.string();

  r.reject_unknown(root, "the top level", {"host", "defaults", "queue"});

  if (const toml::node* hn = root.get("host")) {
    if (const auto* host = hn->as_table()) {
      r.reject_unknown(*host, "[host]", {"plugin_dir", "log_level", "log_format", "shutdown_grace", "rescan_interval",
                                  "metrics"});
      std::string plugin_dir;
      r.read_string(*host, "plugin_dir", "host", plugin_dir);
      if (!plugin_dir.empty()) c.host.plugin_dir = resolve(base, plugin_dir);
      r.read_string(*host, "log_level", "host", c.host.log_level);
      static const std::set<std::string> levels = {"trace", "debug", "info", "warn", "error"};
      if (levels.count(c.host.log_level) == 0) {
        r.problem(host->get("log_level")->source(),
                  "host.log_level = \"" + c.host.log_level + "\": expected trace, debug, info, warn or error");
      }
      r.read_string(*host, "log_format", "host", c.host.log_format);
      if (c.host.log_format != "text" && c.host.log_format != "json") {
        r.problem(host->get("log_format")->source(), "host.log_format = \"" + c.host.log_format + "\": expected text or json");
      }
      r.read_duration(*host, "shutdown_grace", "host", c.host.shutdown_grace);
      r.read_duration(*host, "rescan_interval", "host", c.host.rescan_interval);
      r.read_string(*host, "metrics", "host", c.host.metrics);
      if (host->get("metrics") != nullptr) {
        if (auto a = parse_listen_address(c.host.metrics); !a) r.problem(host->get("metrics")->source(), a.err().message);
      }
    } else {
      r.problem(hn->source(), "[host] must be a table");
    }
  }

  queue_config defaults;
  const toml::node* default_dir_group = nullptr;
  if (const toml::node* dn = root.get("defaults")) {
    if (const auto* d = dn->as_table()) {
      default_dir_group = d->get("dir_group");
      r.reject_unknown(*d, "[defaults]", k_queue_settings);
      read_queue_settings(r, *d, "defaults", defaults);
      read_sandbox_table(r, *d, "defaults", base.string(), defaults.sandbox);
    } else {
      r.problem(dn->source(), "[defaults] must be a table");
    }
  }

  const toml::node* qn = root.get("queue");
  if (qn == nullptr) {
    r.problem("no [[queue]] is defined: add at least one with name, dir and plugin");
  } else if (const auto* arr = qn->as_array(); arr == nullptr || !arr->is_array_of_tables()) {
    r.problem(qn->source(), "queue must be an array of tables: write each queue as [[queue]]");
  } else {
    std::set<std::string> names;
    std::set<std::string> dirs;
    std::set<std::string> redis_targets;
    std::set<std::string> known = k_queue_settings;
    known.insert({"name", "dir", "plugin", "options", "source", "url", "stream", "group", "lease", "batch_window"});
    for (const auto& node : *arr) {
      const auto& t = *node.as_table();
      queue_config q = defaults;
      q.options.clear();
      q.host_uid = ::geteuid();
      r.reject_unknown(t, "[[queue]]", known);
      r.read_string(t, "name", "queue", q.name);
      const std::string section = q.name.empty() ? std::string("queue") : "queue '" + q.name + "'";
      if (t.get("name") == nullptr) {
        r.problem(t.source(), "a [[queue]] has no name: add name = \"...\"");
      } else if (!valid_queue_name(q.name)) {
        r.problem(t.get("name")->source(),
                  "queue name \"" + q.name + "\" must be 1 to 64 letters, digits, '_', '-' or '.'");
      } else if (!names.insert(q.name).second) {
        r.problem(t.get("name")->source(), "queue name \"" + q.name + "\" is used twice: each queue needs its own name");
      }
      std::string source = "dir";
      r.read_string(t, "source", section, source);
      if (source == "redis") {
        read_redis_source(r, t, section, q);
        if (q.redis && !redis_targets.insert(q.redis->url.display() + " " + q.redis->stream).second) {
          r.problem(t.get("url")->source(), section + ": stream \"" + q.redis->stream + "\" of " +
                                                q.redis->url.display() +
                                                " is used by another queue: each queue needs its own stream");
        }
      } else if (source != "dir") {
        r.problem(t.get("source")->source(),
                  section + ": source = \"" + source + "\": expected \"dir\" (the default) or \"redis\"");
      } else {
        for (const char* key : {"url", "stream", "group", "lease", "batch_window"}) {
          if (const toml::node* n = t.get(key)) {
            r.problem(n->source(), section + ": " + key + " is a setting of a Redis queue: add source = \"redis\" or remove it");
          }
        }
      }
      std::string dir;
      r.read_string(t, "dir", section, dir);
      if (q.redis || source == "redis") {
        for (const char* key : {"dir", "dir_mode", "file_mode", "dir_group"}) {
          if (const toml::node* n = t.get(key)) {
            r.problem(n->source(), section + ": " + key + " is not used by a queue with source = \"redis\": remove it");
          }
        }
      } else if (t.get("dir") == nullptr) {
        r.problem(t.source(), section + " has no dir: add dir = \"spool/<name>\"");
      } else if (!dir.empty()) {
        q.dir = resolve(base, dir);
        std::error_code wec;
        std::string key = fs::weakly_canonical(q.dir, wec).string();
        if (wec) key = q.dir;
        if (!dirs.insert(key).second) {
          r.problem(t.get("dir")->source(), section + ": dir \"" + dir + "\" is used by another queue: each queue needs its own directory");
        }
      } else {
        r.problem(t.get("dir")->source(), section + ": dir is empty");
      }
      if (const toml::node* pn = t.get("plugin")) {
        if (auto s = pn->value<std::string>(); s && pn->is_string()) {
          q.plugins.push_back(*s);
        } else if (const auto* list = pn->as_array()) {
          for (const auto& el : *list) {
            if (auto e = el.value<std::string>(); e && el.is_string()) {
              q.plugins.push_back(*e);
            } else {
              r.problem(el.source(), section + ": plugin list entries must be strings");
            }
          }
          if (list->empty()) r.problem(pn->source(), section + ": plugin list is empty");
        } else {
          r.problem(pn->source(), section + ": plugin must be a name or a list of names, not " + config_reader::type_name(*pn));
        }
        for (const auto& p : q.plugins) {
          if (p.empty() || p.find('/') != std::string::npos) {
            r.problem(pn->source(), section + ": plugin \"" + p + "\" must be a plain name such as \"log_writer\"");
          } else if (check_plugins) {
            struct stat st {};
            const std::string file = plugin_path(c.host, p);
            if (::stat(file.c_str(), &st) != 0) {
              r.problem(pn->source(), section + ": plugin \"" + p + "\" not found: no file " + file);
            }
          }
        }
      } else {
        r.problem(t.source(), section + " has no plugin: add plugin = \"<name>\" (a lib<name>.so in " + c.host.plugin_dir + ")");
      }
      read_queue_settings(r, t, section, q);
      read_sandbox_table(r, t, section, base.string(), q.sandbox);
      // Resolved per queue, so that the problem names the queue it stops.
      // An empty name (a queue's own dir_group = "") turns a default off.
      q.dir_gid.reset();
      if (!q.dir_group.empty()) {
        q.dir_gid = find_group(q.dir_group);
        const toml::node* where = t.get("dir_group") != nullptr ? t.get("dir_group") : default_dir_group;
        if (!q.dir_gid && where != nullptr) {
          r.problem(where->source(), section + ": dir_group = \"" + q.dir_group +
                                         "\" is not a group on this host: create it (groupadd " + q.dir_group +
                                         ") or name the group whose members write this queue's tasks");
        }
      }
      if (const toml::node* on = t.get("options")) {
        if (const auto* ot = on->as_table()) {
          flatten_options(r, *ot, "", q.options);
        } else {
          r.problem(on->source(), section + ": options must be a table: write [queue.options]");
        }
      }
      if (q.redis && q.timeout.count() > 0 && q.redis->lease <= q.timeout) {
        const toml::node* where = t.get("lease") != nullptr ? t.get("lease") : &t;
        r.problem(where->source(), section + ": lease (" + format_duration(q.redis->lease) + ") is not longer than timeout (" +
                                       format_duration(q.timeout) +
                                       "): another host would take a task still running as a dead host's");
      }
      if (q.backoff_max < q.backoff) {
        r.problem(t.source(), section + ": backoff_max (" + format_duration(q.backoff_max) + ") is less than backoff (" +
                                  format_duration(q.backoff) + ")");
      }
      c.queues.push_back(std::move(q));
    }
  }
  out.problems = std::move(r.problems_);
  return out;
}

}  // namespace spoold

// spoolctl: argv → the queue it names → one command. Usage mistakes exit 2
// with the usage on stderr; everything a command finds wrong at run time
// exits 1 (SPEC §8).
#include <charconv>
#include <cstdio>
#include <exception>
#include <iostream>
#include <map>
#include <new>
#include <set>

#include "commands.hpp"
#include "config.hpp"
#include "duration.hpp"
#include "enqueue_task.hpp"
#include "spool_file.hpp"
#include "text_format.hpp"

namespace spoold {

namespace {

constexpr const char* k_usage =
    "usage: spoolctl -c FILE COMMAND QUEUE ...   (a queue of the config file)\n"
    "       spoolctl --dir DIR COMMAND ...       (a queue directory, without QUEUE)\n"
    "\n"
    "commands:\n"
    "  enqueue QUEUE [key=value ...] [--body TEXT | --body-file FILE]\n"
    "          [--at UNIX_SECONDS | --delay DURATION] [--priority N] [--no-sync] [--create-dir]\n"
    "                        write one task and print its id; --body-file - reads standard input,\n"
    "                        --delay takes 500ms, 30s, 5m or 1h, --priority puts it in DIR/N/;\n"
    "                        with --dir, DIR must exist unless --create-dir is given\n"
    "  ls QUEUE              list pending, delayed and failed tasks\n"
    "  show QUEUE ID         args, body size, attempt and error of one task\n"
    "  retry QUEUE (ID | --all)\n"
    "                        move failed tasks back to pending, attempt count reset\n"
    "  purge QUEUE (--failed | --all)\n"
    "                        delete failed tasks, or every task (locked ones are skipped)\n"
    "\n"
    "options:\n"
    "  -c, --config FILE     the spoold TOML file\n"
    "  --dir DIR             act on DIR instead of a queue of the config file\n"
    "  -h, --help            this text\n"
    "  --                    what follows is key=value even if it starts with -\n"
    "\n"
    "exit status: 0 success, 1 runtime failure, 2 usage or config error\n";

struct usage_error {
  std::string message;
};

struct option_spec {
  bool takes_value;
  std::set<std::string> commands;  // empty: any command
};

const std::map<std::string, option_spec>& option_specs() {
  static const std::map<std::string, option_spec> specs = {
      {"--config", {true, {}}},
      {"--dir", {true, {}}},
      {"--help", {false, {}}},
      {"--body", {true, {"enqueue"}}},
      {"--body-file", {true, {"enqueue"}}},
      {"--at", {true, {"enqueue"}}},
      {"--delay", {true, {"enqueue"}}},
      {"--priority", {true, {"enqueue"}}},
      {"--no-sync", {false, {"enqueue"}}},
      {"--create-dir", {false, {"enqueue"}}},
      {"--all", {false, {"retry", "purge"}}},
      {"--failed", {false, {"purge"}}},
  };
  return specs;
}

struct command_line {
  std::map<std::string, std::string> options;  // long name → value ("" for a flag)
  std::vector<std::string> positionals;        // the command first
};

command_line split_argv(int argc, char** argv) {
  command_line out;
  bool only_positionals = false;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (only_positionals || arg.size() < 2 || arg[0] != '-') {
      out.positionals.push_back(std::move(arg));
      continue;
    }
    if (arg == "--") {
      only_positionals = true;
      continue;
    }
    std::string name = arg;
    std::optional<std::string> value;
    if (arg == "-c") {
      name = "--config";
    } else if (arg == "-h") {
      name = "--help";
    } else if (auto eq = arg.find('='); arg.rfind("--", 0) == 0 && eq != std::string::npos) {
      name = arg.substr(0, eq);
      value = arg.substr(eq + 1);
    }
    auto spec = option_specs().find(name);
    if (spec == option_specs().end()) throw usage_error{"unknown option '" + escape_bytes(arg) + "'"};
    if (spec->second.takes_value && !value) {
      if (i + 1 >= argc) throw usage_error{name + " needs a value"};
      value = argv[++i];
    } else if (!spec->second.takes_value && value) {
      throw usage_error{name + " takes no value"};
    }
    if (out.options.count(name) != 0) throw usage_error{name + " is given twice"};
    out.options[name] = value.value_or("");
  }
  return out;
}

std::optional<std::string> option(const command_line& cl, const std::string& name) {
  auto it = cl.options.find(name);
  if (it == cl.options.end()) return std::nullopt;
  return it->second;
}

// Unix seconds with up to 9 decimals, exactly: "1700000000.25".
std::int64_t parse_at(const std::string& text) {
  const std::string_view t = text;
  const std::size_t dot = t.find('.');
  const std::string_view whole = t.substr(0, dot);
  const std::string_view frac = dot == std::string_view::npos ? std::string_view() : t.substr(dot + 1);
  std::int64_t seconds = 0;
  auto [p, ec] = std::from_chars(whole.data(), whole.data() + whole.size(), seconds);
  const bool digits_only = !whole.empty() && whole.find_first_not_of("0123456789") == std::string_view::npos &&
                           frac.find_first_not_of("0123456789") == std::string_view::npos;
  if (!digits_only || ec != std::errc() || p != whole.data() + whole.size() || frac.size() > 9 ||
      (dot != std::string_view::npos && frac.empty())) {
    throw usage_error{"--at '" + escape_bytes(text) +
                      "' is not unix seconds: write a number such as 1700000000 or 1700000000.25 (at most 9 decimals)"};
  }
  if (seconds > k_max_at_seconds) throw usage_error{"--at " + text + " is too far in the future"};
  std::int64_t nanos = 0;
  std::int64_t scale = 100'000'000;
  for (char c : frac) {
    nanos += (c - '0') * scale;
    scale /= 10;
  }
  return seconds * 1'000'000'000 + nanos;
}

owned_arg parse_key_value(const std::string& text, bool with_dir) {
  const std::size_t eq = text.find('=');
  if (eq == std::string::npos) {
    std::string hint = with_dir ? " (with --dir there is no QUEUE argument)" : "";
    throw usage_error{"argument '" + escape_bytes(text) + "' is not key=value" + hint};
  }
  if (eq == 0) throw usage_error{"argument '" + escape_bytes(text) + "' has an empty key: write key=value"};
  return {text.substr(0, eq), text.substr(eq + 1)};
}

enqueue_options parse_enqueue(const command_line& cl, const std::vector<std::string>& rest, bool with_dir) {
  enqueue_options o;
  for (const auto& kv : rest) o.args.push_back(parse_key_value(kv, with_dir));
  o.body = option(cl, "--body");
  o.body_file = option(cl, "--body-file");
  if (o.body && o.body_file) throw usage_error{"give --body or --body-file, not both"};
  auto at = option(cl, "--at");
  auto delay = option(cl, "--delay");
  if (at && delay) throw usage_error{"give --at or --delay, not both"};
  if (at) o.at_ns = parse_at(*at);
  if (delay) {
    auto d = parse_duration(*delay);
    if (!d) {
      throw usage_error{"--delay '" + escape_bytes(*delay) +
                        "' is not a duration: write a whole number and ms, s, m or h, such as 500ms or 30s"};
    }
    o.delay_ms = d->count();
  }
  if (auto p = option(cl, "--priority")) {
    if (!is_priority_name(*p)) {
      throw usage_error{"--priority '" + escape_bytes(*p) + "' must be a number of at most 9 digits, such as 0 or 10"};
    }
    o.priority = static_cast<unsigned>(std::stoul(*p));
  }
  o.sync = !option(cl, "--no-sync").has_value();
  // A queue of the config file is created as configured, as the host
  // creates it; a --dir path may be a typo, so only on request.
  const bool create_dir = option(cl, "--create-dir").has_value();
  if (create_dir && !with_dir) {
    throw usage_error{"--create-dir goes with --dir DIR; a queue of the config file is created when missing"};
  }
  o.create_dir = !with_dir || create_dir;
  return o;
}

// Loads the config for -c FILE and finds the queue; config problems are
// usage errors (exit 2) but are not followed by the usage text.
struct config_error {
  std::string message;
};

queue_target resolve_queue(const std::string& config_file, const std::string& name) {
  config_load loaded = load_config(config_file, false);
  if (!loaded.ok()) {
    std::string text = config_file + " is not valid:";
    for (const auto& p : loaded.problems) text += "\n  " + p;
    throw config_error{text};
  }
  const queue_config* q = loaded.value.find_queue(name);
  if (q == nullptr) {
    std::string known;
    for (const auto& each : loaded.value.queues) known += (known.empty() ? "" : ", ") + each.name;
    throw config_error{"no queue '" + escape_bytes(name) + "' in " + config_file + ": the queues are " + known};
  }
  return {"queue '" + q->name + "' (" + q->dir + ")", q->dir, q->file_mode, q->dir_mode};
}

int run(int argc, char** argv) {
  const command_line cl = split_argv(argc, argv);
  if (cl.options.count("--help") != 0) {
    std::cout << k_usage << std::flush;
    return std::cout ? exit_ok : exit_failure;
  }
  if (cl.positionals.empty()) throw usage_error{"no command given"};
  const std::string& command = cl.positionals[0];
  static const std::set<std::string> commands = {"enqueue", "ls", "show", "retry", "purge"};
  if (commands.count(command) == 0) throw usage_error{"unknown command '" + escape_bytes(command) + "'"};
  for (const auto& [name, value] : cl.options) {
    const auto& allowed = option_specs().at(name).commands;
    if (!allowed.empty() && allowed.count(command) == 0) {
      throw usage_error{name + " is not an option of " + command};
    }
  }

  const auto config_file = option(cl, "--config");
  const auto dir = option(cl, "--dir");
  if (config_file && dir) throw usage_error{"give -c FILE QUEUE or --dir DIR, not both"};
  if (!config_file && !dir) throw usage_error{command + " needs -c FILE QUEUE or --dir DIR"};
  std::vector<std::string> rest(cl.positionals.begin() + 1, cl.positionals.end());
  std::optional<std::string> queue_name;
  if (config_file) {
    if (rest.empty()) throw usage_error{command + " needs a QUEUE after -c FILE"};
    queue_name = rest.front();
    rest.erase(rest.begin());
  } else if (dir->empty()) {
    throw usage_error{"--dir needs a directory"};
  }

  // Check the command's own arguments before reading the config, so a typo
  // is reported as such.
  auto expect_count = [&](std::size_t n, const char* what) {
    if (rest.size() != n) {
      throw usage_error{command + " takes " + what + (rest.size() > n ? ", not '" + escape_bytes(rest.back()) + "'" : "")};
    }
  };
  std::optional<enqueue_options> enqueue;
  std::string id;
  bool all = option(cl, "--all").has_value();
  if (command == "enqueue") {
    enqueue = parse_enqueue(cl, rest, dir.has_value());
  } else if (command == "ls") {
    expect_count(0, "no argument after the queue");
  } else if (command == "show") {
    expect_count(1, "one task ID");
    id = rest[0];
  } else if (command == "retry") {
    if (all) {
      expect_count(0, "either an ID or --all");
    } else {
      expect_count(1, "either an ID or --all");
      id = rest[0];
    }
  } else {
    const bool failed = option(cl, "--failed").has_value();
    if (all == failed) throw usage_error{"purge takes either --failed or --all"};
    expect_count(0, "no argument besides --failed or --all");
  }
  if (!id.empty() && !is_task_name(id)) {
    throw usage_error{"'" + escape_bytes(id) + "' is not a task id: ids start with " + std::string(k_task_prefix) +
                      " and contain no '/' (see spoolctl ls)"};
  }

  const queue_target queue =
      config_file ? resolve_queue(*config_file, *queue_name) : queue_target{"directory " + *dir, *dir, 0600, 0700};
  if (command == "enqueue") return run_enqueue(queue, *enqueue);
  if (command == "ls") return run_ls(queue);
  if (command == "show") return run_show(queue, id);
  if (command == "retry") return run_retry(queue, id);
  return run_purge(queue, all);
}

}  // namespace

void report(const std::string& message) { std::cerr << "spoolctl: " << message << '\n' << std::flush; }

}  // namespace spoold

int main(int argc, char** argv) {
  try {
    return spoold::run(argc, argv);
  } catch (const spoold::usage_error& e) {
    spoold::report(e.message);
    std::cerr << '\n' << spoold::k_usage << std::flush;
    return spoold::exit_usage;
  } catch (const spoold::config_error& e) {
    spoold::report(e.message);
    return spoold::exit_usage;
  } catch (const std::bad_alloc&) {
    spoold::report("out of memory");
    return spoold::exit_failure;
  } catch (const std::exception& e) {
    spoold::report(std::string("unexpected failure: ") + e.what());
    return spoold::exit_failure;
  }
}

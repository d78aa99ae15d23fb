// spoolctl: argv (parsed by CLI11) → the queue it names → one command.
// Usage mistakes exit 2 with the usage on stderr; everything a command finds
// wrong at run time exits 1 (SPEC §8).
#include <sys/stat.h>

#include <CLI/CLI.hpp>
#include <cerrno>
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
#include "posix.hpp"
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
    "  purge QUEUE (--failed | --all [--yes])\n"
    "                        delete failed tasks, or every task (locked ones are skipped);\n"
    "                        --all asks first on a terminal, and needs --yes without one\n"
    "  stats [QUEUE]         per queue (every queue of the config without QUEUE): pending,\n"
    "                        delayed, ignored, failed, in flight, age of the oldest pending\n"
    "  why QUEUE ID          each try of a task (start, pid, duration, status, error) and\n"
    "                        when it is due next\n"
    "  fsck QUEUE [--repair] what should not be in the queue directory, and what --repair\n"
    "                        does about it; exit 0 clean, 1 something is left\n"
    "\n"
    "options:\n"
    "  -c, --config FILE     the spoold TOML file\n"
    "  --dir DIR             act on DIR instead of a queue of the config file\n"
    "  --json                ls, show, stats, why and fsck print one JSON document\n"
    "  -h, --help            this text\n"
    "  --                    what follows is key=value even if it starts with -\n"
    "\n"
    "exit status: 0 success, 1 runtime failure, 2 usage or config error\n";

struct usage_error {
  std::string message;
};

// Every option of every command: CLI11 parses, spoolctl checks counts and
// combinations itself so that the messages name what was wrong.
struct parsed_line {
  CLI::App* command = nullptr;
  std::string name;                                 // the command's name
  std::map<std::string, std::vector<std::string>> values;  // long name → values given
  std::map<std::string, std::size_t> flags;               // long name → times given
  std::vector<std::string> rest;                    // positionals after the command
};

const std::map<std::string, std::set<std::string>>& value_options() {
  // option → the commands that take it (empty: every command)
  static const std::map<std::string, std::set<std::string>> v = {
      {"--config", {}},          {"--dir", {}},
      {"--body", {"enqueue"}},   {"--body-file", {"enqueue"}},
      {"--at", {"enqueue"}},     {"--delay", {"enqueue"}},
      {"--priority", {"enqueue"}},
  };
  return v;
}

const std::map<std::string, std::set<std::string>>& flag_options() {
  static const std::map<std::string, std::set<std::string>> f = {
      {"--no-sync", {"enqueue"}}, {"--create-dir", {"enqueue"}},
      {"--all", {"retry", "purge"}}, {"--failed", {"purge"}}, {"--yes", {"purge"}},
      {"--json", {"ls", "show", "stats", "why", "fsck"}}, {"--repair", {"fsck"}},
  };
  return f;
}

const std::vector<std::string>& command_names() {
  static const std::vector<std::string> names = {"enqueue", "ls", "show", "retry", "purge", "stats", "why", "fsck"};
  return names;
}

std::string option_names(const std::string& long_name) {
  if (long_name == "--config") return "-c,--config";
  return long_name;
}

// An unknown word on the command line, named in the message.
[[noreturn]] void refuse_extra(const std::string& word, const std::string& command) {
  if (command.empty() && (word.empty() || word[0] != '-')) {
    throw usage_error{"unknown command '" + escape_bytes(word) + "'"};
  }
  const std::string name = word.substr(0, word.find('='));
  if (value_options().count(name) != 0 || flag_options().count(name) != 0) {
    throw usage_error{name + " is not an option of " + (command.empty() ? std::string("this command") : command)};
  }
  throw usage_error{"unknown option '" + escape_bytes(word) + "'"};
}

// One value per occurrence, every occurrence kept so that a repeated option
// is refused by name; the words after the value are positionals.
CLI::Option* take_value(CLI::Option* opt) {
  return opt->expected(1)->allow_extra_args(false)->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
}

parsed_line parse_command_line(int argc, char** argv, bool& help) {
  CLI::App app{"spoolctl"};
  app.set_help_flag();  // our own usage text, on stdout
  app.allow_extras();
  app.fallthrough();    // -c FILE and --dir DIR also after the command
  // One command: a positional named like a command (a queue "stats") stays a positional.
  app.require_subcommand(0, 1);
  auto* help_flag = app.add_flag("-h,--help");
  help_flag->disable_flag_override();
  std::map<std::string, std::vector<std::string>> values;
  std::map<std::string, CLI::Option*> value_opts;
  for (const auto& [name, commands] : value_options()) {
    if (!commands.empty()) continue;
    value_opts[name] = take_value(app.add_option(option_names(name), values[name]));
  }
  std::map<std::string, CLI::App*> commands;
  std::map<std::string, std::vector<std::string>> rests;
  std::map<std::string, std::map<std::string, CLI::Option*>> flag_opts;
  for (const auto& command : command_names()) {
    CLI::App* sub = app.add_subcommand(command);
    sub->set_help_flag();
    sub->allow_extras();
    sub->add_option("args", rests[command])->take_all();
    for (const auto& [name, allowed] : value_options()) {
      if (allowed.count(command) == 0) continue;
      value_opts[command + name] = take_value(sub->add_option(name, values[command + name]));
    }
    for (const auto& [name, allowed] : flag_options()) {
      if (allowed.count(command) == 0) continue;
      auto* flag = sub->add_flag(name);
      flag->disable_flag_override();
      flag_opts[command][name] = flag;
    }
    commands[command] = sub;
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ArgumentMismatch& e) {
    const std::string what = e.what();
    if (what.find("disallowed flag override") != std::string::npos) {
      throw usage_error{"--" + what.substr(0, what.find(' ')) + " takes no value"};
    }
    throw usage_error{what.substr(0, what.find(':')) + " needs a value"};
  } catch (const CLI::ParseError& e) {
    throw usage_error{e.what()};
  }
  help = help_flag->count() != 0;
  parsed_line out;
  for (auto* sub : app.get_subcommands()) {
    out.command = sub;
    out.name = sub->get_name();
  }
  if (help) return out;
  // Extras: words no option or command took, in the order given.
  // CLI11 keeps the "--" that ends the options among them.
  for (const auto& word : app.remaining(true)) {
    if (word != "--") refuse_extra(word, out.name);
  }
  for (const auto& [key, opt] : value_opts) {
    const std::string name = key.substr(key.find("--"));
    const std::size_t given = opt->count();
    if (given > 1 || (given == 1 && out.values.count(name) != 0)) throw usage_error{name + " is given twice"};
    if (given == 1) out.values[name] = values[key];
  }
  if (out.command != nullptr) {
    for (const auto& [name, flag] : flag_opts[out.name]) {
      if (flag->count() > 1) throw usage_error{name + " is given twice"};
      if (flag->count() == 1) out.flags[name] = 1;
    }
    out.rest = rests[out.name];
  }
  return out;
}

std::optional<std::string> option(const parsed_line& cl, const std::string& name) {
  auto it = cl.values.find(name);
  if (it == cl.values.end() || it->second.empty()) return std::nullopt;
  return it->second.front();
}

bool flag(const parsed_line& cl, const std::string& name) { return cl.flags.count(name) != 0; }

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

enqueue_options parse_enqueue(const parsed_line& cl, const std::vector<std::string>& rest, bool with_dir) {
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
  o.sync = !flag(cl, "--no-sync");
  // A queue of the config file is created as configured, as the host
  // creates it; a --dir path may be a typo, so only on request.
  const bool create_dir = flag(cl, "--create-dir");
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

queue_target target_of(const queue_config& q) {
  return {"queue '" + q.name + "' (" + q.dir + ")", q.name, q.dir, q.file_mode, q.dir_mode, q.dir_group, q.dir_gid};
}

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
  return target_of(*q);
}

// Every queue of the config file, for stats without QUEUE.
std::vector<queue_target> all_queues(const std::string& config_file) {
  config_load loaded = load_config(config_file, false);
  if (!loaded.ok()) {
    std::string text = config_file + " is not valid:";
    for (const auto& p : loaded.problems) text += "\n  " + p;
    throw config_error{text};
  }
  std::vector<queue_target> out;
  for (const auto& q : loaded.value.queues) {
    if (q.redis) continue;  // run_redis_stats
    out.push_back(target_of(q));
  }
  return out;
}

int run(int argc, char** argv) {
  bool help = false;
  const parsed_line cl = parse_command_line(argc, argv, help);
  if (help) {
    std::cout << k_usage << std::flush;
    return std::cout ? exit_ok : exit_failure;
  }
  if (cl.command == nullptr) throw usage_error{"no command given"};
  const std::string& command = cl.name;

  const auto config_file = option(cl, "--config");
  const auto dir = option(cl, "--dir");
  if (config_file && dir) throw usage_error{"give -c FILE QUEUE or --dir DIR, not both"};
  if (!config_file && !dir) throw usage_error{command + " needs -c FILE QUEUE or --dir DIR"};
  std::vector<std::string> rest = cl.rest;
  std::optional<std::string> queue_name;
  if (config_file) {
    if (rest.empty() && command != "stats") throw usage_error{command + " needs a QUEUE after -c FILE"};
    if (!rest.empty()) {
      queue_name = rest.front();
      rest.erase(rest.begin());
    }
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
  const bool all = flag(cl, "--all");
  const bool json = flag(cl, "--json");
  if (command == "enqueue") {
    enqueue = parse_enqueue(cl, rest, dir.has_value());
  } else if (command == "ls" || command == "stats") {
    expect_count(0, "no argument after the queue");
  } else if (command == "fsck") {
    expect_count(0, "no argument after the queue besides --repair");
  } else if (command == "show" || command == "why") {
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
    const bool failed = flag(cl, "--failed");
    if (all == failed) throw usage_error{"purge takes either --failed or --all"};
    if (failed && flag(cl, "--yes")) throw usage_error{"--yes goes with purge --all; purge --failed does not ask"};
    expect_count(0, "no argument besides --failed or --all");
  }
  if (!id.empty() && !is_task_name(id)) {
    throw usage_error{"'" + escape_bytes(id) + "' is not a task id: ids start with " + std::string(k_task_prefix) +
                      " and contain no '/' (see spoolctl ls)"};
  }

  if (config_file) {
    // A Redis queue: the same commands on its keys (why and fsck have no
    // Redis form).
    config_load loaded = load_config(*config_file, false);
    std::vector<const queue_config*> redis_queues;
    for (const auto& q : loaded.value.queues) {
      if (q.redis && (!queue_name || q.name == *queue_name)) redis_queues.push_back(&q);
    }
    if (loaded.ok() && queue_name && !redis_queues.empty()) {
      const queue_config& q = *redis_queues.front();
      if (command == "enqueue") return run_redis_enqueue(q, *enqueue);
      if (command == "ls") return run_redis_ls(q, json);
      if (command == "show") return run_redis_show(q, id, json);
      if (command == "retry") return run_redis_retry(q, id);
      if (command == "stats") return run_redis_stats(redis_queues, json);
      if (command == "purge") return run_redis_purge(q, all, flag(cl, "--yes"));
      throw config_error{command + " reads a queue directory: queue '" + q.name + "' takes its tasks from Redis"};
    }
    if (loaded.ok() && command == "stats" && !queue_name && !redis_queues.empty()) {
      const auto dirs = all_queues(*config_file);
      if (json && !dirs.empty()) {
        throw config_error{"stats --json without QUEUE covers directory and Redis queues in two documents: "
                           "give a QUEUE"};
      }
      const int first = dirs.empty() ? exit_ok : run_stats(dirs, json);
      const int second = run_redis_stats(redis_queues, json);
      return first != exit_ok ? first : second;
    }
  }
  if (command == "stats" && config_file && !queue_name) return run_stats(all_queues(*config_file), json);
  const queue_target queue = config_file ? resolve_queue(*config_file, *queue_name)
                                         : queue_target{"directory " + *dir, "", *dir, 0600, 0700, "", std::nullopt};
  if (dir && (command == "stats" || command == "why" || command == "fsck")) {
    struct stat st {};
    const int rc = ::stat(dir->c_str(), &st);
    const int err = errno;
    if (rc != 0 || !S_ISDIR(st.st_mode)) {
      throw config_error{"no queue directory " + escape_bytes(*dir) + ": " +
                         (rc != 0 ? errno_text(err) : std::string("not a directory"))};
    }
  }
  if (command == "enqueue") return run_enqueue(queue, *enqueue);
  if (command == "ls") return run_ls(queue, json);
  if (command == "show") return run_show(queue, id, json);
  if (command == "retry") return run_retry(queue, id);
  if (command == "stats") return run_stats({queue}, json);
  if (command == "why") return run_why(queue, id, json);
  if (command == "fsck") return run_fsck(queue, flag(cl, "--repair"), json);
  return run_purge(queue, all, flag(cl, "--yes"));
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

#include "redis_producer.hpp"

#include <cerrno>
#include <charconv>
#include <string_view>
#include <vector>

#include "posix.hpp"
#include "redis_limits.hpp"

namespace spoold {

namespace {

constexpr std::string_view k_own_prefix = "spoold.";

// A level as the spoolers name its stream: a decimal without leading zeros
// ("03" and "3" are the same level, as the folders 03/ and 3/ sort alike).
std::string level_text(const std::string& priority) {
  unsigned level = 0;
  (void)std::from_chars(priority.data(), priority.data() + priority.size(), level);  // task_priority: digits only
  return std::to_string(level);
}

// The first error among the replies of MULTI ... EXEC, naming its command:
// one refused at queueing makes EXEC fail as a whole (EXECABORT), one that
// failed when run (WRONGTYPE) is an element of EXEC's reply.
std::optional<std::string> first_refusal(const std::vector<std::vector<std::string_view>>& commands,
                                         const std::vector<redis_reply>& replies) {
  for (std::size_t i = 0; i + 1 < replies.size(); ++i) {
    if (is_error(replies[i].get())) return std::string(commands[i][0]) + ": " + reply_text(replies[i].get());
  }
  const redisReply* exec = replies.back().get();
  if (is_error(exec)) return "EXEC: " + reply_text(exec);
  for (std::size_t i = 0; i < reply_size(exec); ++i) {
    if (is_error(reply_at(exec, i))) return std::string(commands[i + 1][0]) + ": " + reply_text(reply_at(exec, i));
  }
  return std::nullopt;
}

result<void> write_task(redis_conn& conn, const std::string& stream, const task_request& request, const std::string& id,
                        std::chrono::milliseconds timeout) {
  const std::vector<owned_arg> args = task_args(request);
  std::vector<std::string_view> fields;
  fields.reserve(args.size() * 2 + 4);
  for (const auto& a : args) {
    fields.push_back(a.key);
    fields.push_back(a.value);
  }
  fields.insert(fields.end(), {"spoold.id", id, "spoold.body", request.body});

  const std::optional<std::string> priority = task_priority(request);
  const std::string level = priority ? level_text(*priority) : std::string();
  const std::string target = priority ? stream + ":p" + level : stream;
  const std::string priorities = stream + ":priorities";
  const std::optional<std::int64_t> due = task_due_ns(request);
  const bool later = due && *due > now_ns();
  const std::string list = target + ":task:" + id;
  const std::string delayed = target + ":delayed";
  const std::string due_ms = later ? std::to_string(*due / 1'000'000) : std::string();

  std::vector<std::vector<std::string_view>> commands = {{"MULTI"}};
  if (priority) commands.push_back({"SADD", priorities, level});
  if (later) {
    // DEL first: a list left by an earlier write of the same id would
    // otherwise get these fields appended to its own.
    commands.push_back({"DEL", list});
    std::vector<std::string_view> push = {"RPUSH", list};
    push.insert(push.end(), fields.begin(), fields.end());
    commands.push_back(std::move(push));
    commands.push_back({"ZADD", delayed, due_ms, id});
  } else {
    std::vector<std::string_view> add = {"XADD", target, "*"};
    add.insert(add.end(), fields.begin(), fields.end());
    commands.push_back(std::move(add));
  }
  commands.push_back({"EXEC"});

  auto replies = conn.pipeline(commands, timeout);
  if (!replies) return replies.err();
  if (auto refused = first_refusal(commands, *replies)) {
    return make_error("Redis at " + conn.url().display() + ": " + *refused);
  }
  return {};
}

}  // namespace

result<void> check_redis_task(const task_request& request) {
  if (auto checked = check_task(request); !checked) return checked;
  for (const auto& a : request.args) {
    if (a.key.compare(0, k_own_prefix.size(), k_own_prefix) == 0) {
      return make_error("the key '" + a.key.substr(0, 64) + "' starts with 'spoold.': those keys are the host's own",
                        EINVAL);
    }
  }
  if (request.body.size() > k_max_body_bytes) {
    return make_error("the body takes " + std::to_string(request.body.size()) + " bytes, over the " +
                          std::to_string(k_max_body_bytes) + " a task of a Redis queue allows",
                      E2BIG);
  }
  // The args, then spoold.id and spoold.body.
  const std::size_t fields = task_args(request).size() + 2;
  if (fields > k_max_entry_fields) {
    return make_error("the task has " + std::to_string(fields - 2) + " arguments, over the " +
                          std::to_string(k_max_entry_fields - 2) + " a task of a Redis queue allows",
                      E2BIG);
  }
  return {};
}

redis_producer::redis_producer(redis_url url, std::string stream, std::chrono::milliseconds timeout)
    : url_(std::move(url)), stream_(std::move(stream)), timeout_(timeout) {}

result<void> redis_producer::enqueue(const task_request& request, const std::string& id) {
  if (auto checked = check_redis_task(request); !checked) return checked;
  const bool kept = conn_.has_value() && !conn_->broken();
  if (!kept) {
    conn_.reset();
    auto c = redis_conn::connect(url_, timeout_);
    if (!c) return c.err();
    conn_.emplace(std::move(*c));
  }
  auto written = write_task(*conn_, stream_, request, id, timeout_);
  if (written || written.err().code != k_redis_unreachable || !kept) {
    if (!written && conn_->broken()) conn_.reset();
    return written;
  }
  // The kept connection had died while idle (a server restart, its timeout
  // setting): a new one, once. Should the server have run the transaction
  // and only its reply been lost, the task is written twice with the same
  // id, as any producer that tries again would.
  conn_.reset();
  auto c = redis_conn::connect(url_, timeout_);
  if (!c) return c.err();
  conn_.emplace(std::move(*c));
  written = write_task(*conn_, stream_, request, id, timeout_);
  if (!written && conn_->broken()) conn_.reset();
  return written;
}

}  // namespace spoold

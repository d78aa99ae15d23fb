#include "redis_source.hpp"

#include <signal.h>

#include <algorithm>
#include <cerrno>
#include <charconv>

#include <hiredis/hiredis.h>

#include "redis_scripts.hpp"

namespace spoold {

namespace {


bool plain_id(std::string_view id) {
  if (id.empty() || id.size() > 255) return false;
  return std::all_of(id.begin(), id.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.';
  });
}

// Appends the entry's fields as key, value arguments of a script, without
// the outcome's own fields when the script sets them, and at most
// k_max_entry_fields pairs: Lua's unpack() has a limit, and an entry with
// more is malformed anyway (its reason says how many it had). Returns the
// pairs appended.
std::size_t append_fields(const redis_entry& e, bool without_outcome_fields, std::vector<std::string>& args) {
  std::size_t copied = 0;
  for (const auto& [k, v] : e.fields) {
    if (without_outcome_fields && (k == "spoold.attempt" || k == "spoold.error")) continue;
    if (copied == k_max_entry_fields) break;
    ++copied;
    args.push_back(k);
    args.push_back(v);
  }
  return copied;
}

void entries_of(const std::string& stream, const redisReply* list, std::vector<redis_entry>& out) {
  for (std::size_t i = 0; i < reply_size(list); ++i) {
    if (auto e = entry_from_reply(stream, reply_at(list, i))) out.push_back(std::move(*e));
  }
}

// A stream reply: [[stream, [entry, ...]], ...].
void entries_of_streams(const redisReply* r, std::vector<redis_entry>& out) {
  for (std::size_t i = 0; i < reply_size(r); ++i) {
    const redisReply* s = reply_at(r, i);
    entries_of(reply_text(reply_at(s, 0)), reply_at(s, 1), out);
  }
}

}  // namespace

std::optional<redis_entry> entry_from_reply(const std::string& stream, const redisReply* r) {
  if (reply_size(r) != 2) return std::nullopt;  // a deleted entry: nil
  redis_entry e;
  e.stream = stream;
  e.id = reply_text(reply_at(r, 0));
  const redisReply* f = reply_at(r, 1);
  for (std::size_t i = 0; i + 1 < reply_size(f); i += 2) {
    e.fields.emplace_back(reply_text(reply_at(f, i)), reply_text(reply_at(f, i + 1)));
  }
  return e;
}

redis_task parse_entry(const redis_entry& e) {
  redis_task t;
  bool have_id = false;
  std::size_t args_bytes = 0;
  if (e.fields.size() > k_max_entry_fields) {
    t.malformed = "malformed entry: " + std::to_string(e.fields.size()) + " fields, more than " +
                  std::to_string(k_max_entry_fields);
    return t;
  }
  for (const auto& [k, v] : e.fields) {
    if (k == "spoold.id") {
      have_id = true;
      t.task_id = v;
      continue;
    }
    if (k == "spoold.body") {
      if (v.size() > k_max_body_bytes) {
        t.malformed = "malformed entry: spoold.body of " + std::to_string(v.size()) + " bytes is over the limit of " +
                      std::to_string(k_max_body_bytes);
        return t;
      }
      t.body = v;
      continue;
    }
    if (k == "spoold.attempt") {
      unsigned a = 0;
      const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), a);
      if (v.empty() || ec != std::errc() || end != v.data() + v.size()) {
        t.malformed = "malformed entry: spoold.attempt = \"" + v.substr(0, 40) + "\" is not a number";
        return t;
      }
      t.attempt = a;
    }
    args_bytes += 4 + k.size() + v.size();
    if (k.empty()) {
      t.malformed = "malformed entry: a field with an empty name";
      return t;
    }
    t.args.emplace_back(k, v);
  }
  if (!have_id) {
    t.malformed = "malformed entry: no spoold.id field (the task id); write tasks with a spoold producer";
  } else if (!plain_id(t.task_id)) {
    t.malformed = "malformed entry: spoold.id must be 1 to 255 letters, digits, '_', '-' or '.'";
  } else if (args_bytes > k_max_args_bytes) {
    t.malformed = "malformed entry: its args take " + std::to_string(args_bytes) +
                  " bytes, over the 65535 of a spool file's args block";
  }
  return t;
}

std::vector<std::string> queue_streams(const std::string& base, const std::vector<unsigned>& priorities) {
  std::vector<std::string> out;
  for (unsigned p : priorities) out.push_back(base + ":p" + std::to_string(p));
  out.push_back(base);
  return out;
}

std::string stream_for_priority(const std::string& base, const std::string& priority) {
  return priority.empty() ? base : base + ":p" + priority;
}

redis_source::redis_source(const queue_config& q, std::string consumer)
    : q_(q),
      base_(q.redis->stream),
      group_(q.redis->group),
      consumer_(std::move(consumer)),
      take_{k_take, {}},
      ok_{k_ok, {}},
      retry_{k_retry, {}},
      fail_{k_fail, {}},
      release_{k_release, {}},
      offer_ignored_{k_offer_ignored, {}},
      take_over_{k_take_over, {}} {}

result<void> redis_source::prepare(redis_conn& c) {
  for (script* s : {&take_, &ok_, &retry_, &fail_, &release_, &offer_ignored_, &take_over_}) {
    auto r = c.command({"SCRIPT", "LOAD", s->text}, k_redis_command_timeout);
    if (!r) return r.err();
    if (is_error(r->get())) return make_error("SCRIPT LOAD: " + reply_text(r->get()));
    s->sha = reply_text(r->get());
  }
  return {};
}

std::vector<std::string> redis_source::eval(const script& s, std::vector<std::string> keys,
                                            std::vector<std::string> args) const {
  std::vector<std::string> out;
  out.reserve(3 + keys.size() + args.size());
  out.push_back("EVALSHA");
  out.push_back(s.sha);
  out.push_back(std::to_string(keys.size()));
  for (auto& k : keys) out.push_back(std::move(k));
  for (auto& a : args) out.push_back(std::move(a));
  return out;
}

result<std::vector<unsigned>> redis_source::priorities(redis_conn& c) {
  auto r = c.command({"SMEMBERS", base_ + ":priorities"}, k_redis_command_timeout);
  if (!r) return r.err();
  std::vector<unsigned> out;
  for (std::size_t i = 0; i < reply_size(r->get()); ++i) {
    const std::string text = reply_text(reply_at(r->get(), i));
    unsigned p = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), p);
    if (!text.empty() && ec == std::errc() && end == text.data() + text.size()) out.push_back(p);
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> redis_source::take_command(const std::vector<std::string>& streams, std::int64_t now_ms,
                                                    std::size_t count) const {
  return eval(take_, streams, {group_, consumer_, std::to_string(now_ms), std::to_string(count)});
}

std::vector<redis_entry> redis_source::read_take(const redisReply* r, std::int64_t& next_due_ms) {
  next_due_ms = -1;
  std::vector<redis_entry> out;
  if (r == nullptr) return out;
  if (r->type == REDIS_REPLY_INTEGER) {
    next_due_ms = r->integer;
    return out;
  }
  entries_of_streams(r, out);
  return out;
}

result<std::vector<redis_entry>> redis_source::wait(redis_conn& c, const std::vector<std::string>& streams,
                                                    std::chrono::milliseconds block, std::size_t count) {
  std::vector<std::string> argv = {"XREADGROUP", "GROUP", group_, consumer_, "COUNT", std::to_string(count),
                                   "BLOCK",      std::to_string(block.count()), "STREAMS"};
  for (const auto& s : streams) argv.push_back(s);
  for (std::size_t i = 0; i < streams.size(); ++i) argv.push_back(">");
  std::vector<std::string_view> views(argv.begin(), argv.end());
  auto r = c.command(views, block + k_redis_command_timeout);
  if (!r) return r.err();
  if (is_error(r->get())) return make_error("XREADGROUP: " + reply_text(r->get()));
  std::vector<redis_entry> out;
  entries_of_streams(r->get(), out);
  return out;
}

std::vector<std::string> redis_source::ok_command(const redis_entry& e) const {
  return eval(ok_, {e.stream}, {group_, e.id});
}

std::vector<std::string> redis_source::retry_command(const redis_entry& e, const std::string& task_id,
                                                     std::uint32_t attempt, const std::string& error,
                                                     std::int64_t due_ms) const {
  std::vector<std::string> args = {group_, e.id, std::to_string(due_ms), task_id};
  bool have_id = false;
  for (const auto& [k, v] : e.fields) {
    if (k == "spoold.attempt" || k == "spoold.error") continue;
    if (k == "spoold.id") have_id = true;
    args.push_back(k);
    args.push_back(v);
  }
  if (!have_id) {
    args.push_back("spoold.id");
    args.push_back(task_id);
  }
  args.push_back("spoold.attempt");
  args.push_back(std::to_string(attempt));
  if (!error.empty()) {
    args.push_back("spoold.error");
    args.push_back(error);
  }
  return eval(retry_, {e.stream, e.stream + ":delayed", e.stream + ":task:" + task_id}, std::move(args));
}

std::vector<std::string> redis_source::fail_command(const redis_entry& e, std::uint32_t attempt,
                                                    const std::string& error) const {
  std::vector<std::string> args = {group_, e.id};
  append_fields(e, true, args);
  args.push_back("spoold.attempt");
  args.push_back(std::to_string(attempt));
  args.push_back("spoold.error");
  args.push_back(error);
  return eval(fail_, {e.stream, base_ + ":failed"}, std::move(args));
}

std::vector<std::string> redis_source::release_command(const redis_entry& e) const {
  std::vector<std::string> args = {group_, e.id};
  if (append_fields(e, false, args) == 0) return ok_command(e);  // XADD needs a field: nothing to give back
  return eval(release_, {e.stream}, std::move(args));
}

std::vector<std::string> redis_source::ignore_command(const redis_entry& e) const {
  return {"SADD", e.stream + ":ignored", e.id};
}

result<std::vector<dead_consumer>> redis_source::dead_consumers(redis_conn& c, const std::vector<std::string>& streams,
                                                                const std::string& prefix) {
  std::vector<dead_consumer> out;
  for (const auto& s : streams) {
    auto info = c.command({"XINFO", "CONSUMERS", s, group_}, k_redis_command_timeout);
    if (!info) return info.err();
    if (is_error(info->get())) continue;  // no stream or no group yet
    for (std::size_t i = 0; i < reply_size(info->get()); ++i) {
      const redisReply* fields = reply_at(info->get(), i);
      std::string name;
      for (std::size_t j = 0; j + 1 < reply_size(fields); j += 2) {
        if (reply_text(reply_at(fields, j)) == "name") name = reply_text(reply_at(fields, j + 1));
      }
      if (name == consumer_ || name.rfind(prefix, 0) != 0) continue;
      const std::string pid_text = name.substr(prefix.size());
      pid_t pid = 0;
      const auto [end, ec] = std::from_chars(pid_text.data(), pid_text.data() + pid_text.size(), pid);
      if (ec != std::errc() || end != pid_text.data() + pid_text.size() || pid <= 0) continue;
      if (::kill(pid, 0) == 0 || errno != ESRCH) continue;  // alive (or a zombie not reaped yet)
      out.push_back({s, name, pid});
    }
  }
  return out;
}

result<std::vector<redis_entry>> redis_source::take_over(redis_conn& c, const dead_consumer& d) {
  auto r = c.command({"EVALSHA", take_over_.sha, "1", d.stream, group_, d.name, consumer_}, k_redis_command_timeout);
  if (!r) return r.err();
  if (is_error(r->get())) return make_error("take over from " + d.name + ": " + reply_text(r->get()));
  std::vector<redis_entry> out;
  entries_of(d.stream, r->get(), out);
  return out;
}

result<std::vector<redis_entry>> redis_source::take_over_expired(redis_conn& c,
                                                                 const std::vector<std::string>& streams) {
  std::vector<redis_entry> out;
  const std::string idle = std::to_string(q_.redis->lease.count());
  for (const auto& s : streams) {
    std::string cursor = "0-0";
    for (int round = 0; round < 10; ++round) {
      auto r = c.command({"XAUTOCLAIM", s, group_, consumer_, idle, cursor, "COUNT", "100"}, k_redis_command_timeout);
      if (!r) return r.err();
      if (is_error(r->get())) break;  // no stream or group yet
      entries_of(s, reply_at(r->get(), 1), out);
      cursor = reply_text(reply_at(r->get(), 0));
      if (cursor == "0-0" || cursor.empty()) break;
    }
  }
  return out;
}

result<std::vector<redis_entry>> redis_source::offer_ignored(redis_conn& c, const std::vector<std::string>& streams,
                                                             const std::string& token) {
  std::vector<redis_entry> out;
  for (const auto& s : streams) {
    auto r = c.command({"EVALSHA", offer_ignored_.sha, "3", s, s + ":ignored", s + ":ignored:offered", group_,
                        consumer_, token},
                       k_redis_command_timeout);
    if (!r) return r.err();
    if (is_error(r->get())) continue;  // no stream or no group yet: nothing was ignored
    entries_of(s, r->get(), out);
  }
  return out;
}

result<redis_backlog> redis_source::backlog(redis_conn& c, const std::vector<std::string>& streams) {
  std::vector<std::vector<std::string>> commands;
  for (const auto& s : streams) {
    commands.push_back({"XLEN", s});
    commands.push_back({"ZCARD", s + ":delayed"});
    commands.push_back({"SCARD", s + ":ignored"});
    commands.push_back({"XPENDING", s, group_});  // the summary: [count, first, last, consumers]
  }
  commands.push_back({"XLEN", base_ + ":failed"});
  std::vector<std::vector<std::string_view>> views;
  for (const auto& cmd : commands) views.emplace_back(cmd.begin(), cmd.end());
  auto replies = c.pipeline(views, k_redis_command_timeout);
  if (!replies) return replies.err();
  redis_backlog b;
  for (std::size_t i = 0; i < streams.size(); ++i) {
    const auto length = static_cast<std::uint64_t>(std::max(0LL, reply_integer((*replies)[4 * i].get())));
    const auto ignored = static_cast<std::uint64_t>(std::max(0LL, reply_integer((*replies)[4 * i + 2].get())));
    // No group yet: an error reply, nothing delivered.
    const auto pending =
        static_cast<std::uint64_t>(std::max(0LL, reply_integer(reply_at((*replies)[4 * i + 3].get(), 0))));
    b.waiting += length > pending ? length - pending : 0;
    b.delayed += static_cast<std::uint64_t>(std::max(0LL, reply_integer((*replies)[4 * i + 1].get())));
    b.ignored += ignored;
    b.in_flight += pending > ignored ? pending - ignored : 0;
  }
  b.failed = static_cast<std::uint64_t>(std::max(0LL, reply_integer(replies->back().get())));
  return b;
}

result<bool> redis_source::is_ignored(redis_conn& c, const redis_entry& e) {
  auto r = c.command({"SISMEMBER", e.stream + ":ignored", e.id}, k_redis_command_timeout);
  if (!r) return r.err();
  return reply_integer(r->get()) == 1;
}

void redis_source::leave(redis_conn& c, const std::vector<std::string>& streams) {
  for (const auto& s : streams) {
    auto p = c.command({"XPENDING", s, group_, "-", "+", "1", consumer_}, k_redis_command_timeout);
    if (!p || reply_size(p->get()) != 0) continue;
    (void)c.command({"XGROUP", "DELCONSUMER", s, group_, consumer_}, k_redis_command_timeout);
  }
}

}  // namespace spoold

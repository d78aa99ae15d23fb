// spoolctl on a Redis queue (README, Redis Streams): the same commands as on
// a directory, read from and written to the queue's keys. Works with the
// host stopped; a host running beside it sees the changes at once.
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <functional>
#include <iostream>
#include <map>
#include <set>
#include <sstream>

#include <hiredis/hiredis.h>

#include "commands.hpp"
#include "config.hpp"
#include "enqueue_task.hpp"
#include "json_out.hpp"
#include "posix.hpp"
#include "redis_conn.hpp"
#include "redis_producer.hpp"
#include "text_format.hpp"

namespace spoold {

namespace {

using std::chrono::milliseconds;
constexpr milliseconds k_timeout{5000};

struct redis_error {
  std::string message;
};

struct listed_task {
  std::string state;  // in_flight, pending, delayed, ignored, failed
  std::string id;     // spoold.id
  std::string stream;
  std::string entry;  // the entry id; empty for a delayed task
  std::int64_t due_ms = 0;
  std::vector<std::pair<std::string, std::string>> fields;
  std::string field(const std::string& key) const {
    std::string v;
    for (const auto& [k, val] : fields) {
      if (k == key) v = val;
    }
    return v;
  }
};

class redis_queue {
 public:
  explicit redis_queue(const queue_config& q) : q_(q), base_(q.redis->stream), group_(q.redis->group) {
    auto c = redis_conn::connect(q.redis->url, k_timeout);
    if (!c) throw redis_error{"queue '" + q.name + "': " + c.err().message};
    conn_.emplace(std::move(*c));
  }

  redis_reply run(std::vector<std::string> argv) {
    std::vector<std::string_view> views(argv.begin(), argv.end());
    auto r = conn_->command(views, k_timeout);
    if (!r) throw redis_error{"queue '" + q_.name + "': " + r.err().message};
    if (is_error(r->get())) {
      throw redis_error{"queue '" + q_.name + "': Redis at " + q_.redis->url.display() + ": " + argv[0] + ": " +
                        reply_text(r->get())};
    }
    return std::move(*r);
  }

  std::vector<std::string> streams() {
    auto r = run({"SMEMBERS", base_ + ":priorities"});
    std::vector<unsigned> levels;
    for (std::size_t i = 0; i < reply_size(r.get()); ++i) {
      const std::string t = reply_text(reply_at(r.get(), i));
      unsigned p = 0;
      const auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), p);
      if (!t.empty() && ec == std::errc() && end == t.data() + t.size()) levels.push_back(p);
    }
    std::sort(levels.begin(), levels.end());
    std::vector<std::string> out;
    for (unsigned p : levels) out.push_back(base_ + ":p" + std::to_string(p));
    out.push_back(base_);
    return out;
  }

  static std::vector<std::pair<std::string, std::string>> pairs(const redisReply* list) {
    std::vector<std::pair<std::string, std::string>> out;
    for (std::size_t i = 0; i + 1 < reply_size(list); i += 2) {
      out.emplace_back(reply_text(reply_at(list, i)), reply_text(reply_at(list, i + 1)));
    }
    return out;
  }

  void add_entries(const std::string& stream, const std::string& state, const std::set<std::string>& in_flight,
                   const std::set<std::string>& ignored, std::vector<listed_task>& out) {
    auto r = run({"XRANGE", stream, "-", "+"});
    for (std::size_t i = 0; i < reply_size(r.get()); ++i) {
      const redisReply* e = reply_at(r.get(), i);
      listed_task t;
      t.entry = reply_text(reply_at(e, 0));
      t.stream = stream;
      t.fields = pairs(reply_at(e, 1));
      t.id = t.field("spoold.id");
      if (t.id.empty()) t.id = "(entry " + t.entry + ")";
      t.state = ignored.count(t.entry) != 0 ? "ignored" : in_flight.count(t.entry) != 0 ? "in_flight" : state;
      out.push_back(std::move(t));
    }
  }

  std::vector<listed_task> list() {
    std::vector<listed_task> out;
    for (const auto& s : streams()) {
      if (reply_integer(run({"EXISTS", s}).get()) == 0) continue;
      std::set<std::string> in_flight;
      std::set<std::string> ignored;
      std::vector<std::string_view> xp = {"XPENDING", s, group_, "-", "+", "1000000"};
      auto p = conn_->command(xp, k_timeout);
      if (!p) throw redis_error{"queue '" + q_.name + "': " + p.err().message};
      for (std::size_t i = 0; i < reply_size(p->get()); ++i) {
        in_flight.insert(reply_text(reply_at(reply_at(p->get(), i), 0)));
      }
      auto ig = run({"SMEMBERS", s + ":ignored"});
      for (std::size_t i = 0; i < reply_size(ig.get()); ++i) ignored.insert(reply_text(reply_at(ig.get(), i)));
      add_entries(s, "pending", in_flight, ignored, out);
      auto d = run({"ZRANGE", s + ":delayed", "0", "-1", "WITHSCORES"});
      for (std::size_t i = 0; i + 1 < reply_size(d.get()); i += 2) {
        listed_task t;
        t.state = "delayed";
        t.stream = s;
        t.id = reply_text(reply_at(d.get(), i));
        const std::string score = reply_text(reply_at(d.get(), i + 1));
        t.due_ms = static_cast<std::int64_t>(std::strtod(score.c_str(), nullptr));
        t.fields = pairs(run({"LRANGE", s + ":task:" + t.id, "0", "-1"}).get());
        out.push_back(std::move(t));
      }
    }
    add_entries(base_ + ":failed", "failed", {}, {}, out);
    return out;
  }

  const queue_config& q_;
  std::string base_;
  std::string group_;
  std::optional<redis_conn> conn_;
};

std::string label(const queue_config& q) {
  return "queue '" + q.name + "' (Redis stream " + q.redis->stream + " at " + q.redis->url.display() + ")";
}

json task_json(const listed_task& t) {
  json j;
  j["id"] = json(json_text(t.id));
  j["state"] = t.state;
  j["stream"] = json_text(t.stream);
  j["entry"] = t.entry.empty() ? json(nullptr) : json(t.entry);
  const std::string attempt = t.field("spoold.attempt");
  j["attempt"] = attempt.empty() ? 0 : std::atoi(attempt.c_str());
  const std::string error = t.field("spoold.error");
  j["error"] = error.empty() ? json(nullptr) : json(json_text(error));
  j["due"] = t.state == "delayed" ? json_time(t.due_ms * 1'000'000) : json(nullptr);
  return j;
}

int guarded(const std::function<int()>& body) {
  try {
    return body();
  } catch (const redis_error& e) {
    report(e.message);
    return exit_failure;
  }
}

}  // namespace

int make_request(const enqueue_options& options, task_request& request);

int run_redis_enqueue(const queue_config& q, const enqueue_options& options) {
  task_request request;
  if (int code = make_request(options, request); code != exit_ok) return code;
  // Refused before connecting: bad input is a usage error even with the
  // server down.
  if (auto checked = check_redis_task(request); !checked) {
    report(checked.err().message);
    return exit_usage;
  }
  redis_producer producer(q.redis->url, q.redis->stream, k_timeout);
  const std::string id = make_task_name();
  if (auto written = producer.enqueue(request, id); !written) {
    report("queue '" + q.name + "': " + written.err().message);
    return exit_failure;
  }
  std::cout << id << '\n' << std::flush;
  return static_cast<int>(std::cout ? exit_ok : exit_failure);
}

int run_redis_ls(const queue_config& q, bool as_json) {
  return guarded([&] {
    redis_queue rq(q);
    const auto tasks = rq.list();
    if (as_json) {
      json doc;
      doc["queue"] = q.name;
      doc["stream"] = q.redis->stream;
      doc["tasks"] = json::array();
      for (const auto& t : tasks) doc["tasks"].push_back(task_json(t));
      return print_json(doc);
    }
    std::ostringstream out;
    const std::int64_t now_ms = now_ns() / 1'000'000;
    for (const auto& t : tasks) {
      out << t.state << ' ' << escape_bytes(t.id);
      const std::string attempt = t.field("spoold.attempt");
      if (!attempt.empty()) out << " attempt=" << attempt;
      if (t.state == "delayed") out << " due_in=" << format_span(std::max<std::int64_t>(0, t.due_ms - now_ms) * 1'000'000);
      const std::string error = t.field("spoold.error");
      if (!error.empty()) out << " error=" << escape_bytes(error);
      out << '\n';
    }
    std::cout << out.str() << std::flush;
    return static_cast<int>(std::cout ? exit_ok : exit_failure);
  });
}

int run_redis_show(const queue_config& q, const std::string& id, bool as_json) {
  return guarded([&] {
    redis_queue rq(q);
    for (const auto& t : rq.list()) {
      if (t.id != id) continue;
      if (as_json) {
        json doc = task_json(t);
        json args = json::array();
        for (const auto& [k, v] : t.fields) {
          if (k != "spoold.body" && k != "spoold.id") args.push_back(json::array({json_text(k), json_text(v)}));
        }
        doc["args"] = args;
        doc["body_size"] = t.field("spoold.body").size();
        return print_json(doc);
      }
      std::ostringstream out;
      out << "id: " << escape_bytes(t.id) << "\nstate: " << t.state << "\nstream: " << t.stream << '\n';
      if (!t.entry.empty()) out << "entry: " << t.entry << '\n';
      out << "attempt: " << (t.field("spoold.attempt").empty() ? "0" : t.field("spoold.attempt")) << '\n';
      if (!t.field("spoold.error").empty()) out << "error: " << escape_bytes(t.field("spoold.error")) << '\n';
      out << "body: " << t.field("spoold.body").size() << " bytes\nargs:\n";
      for (const auto& [k, v] : t.fields) {
        if (k != "spoold.body" && k != "spoold.id") out << "  " << escape_bytes(k) << '=' << escape_bytes(v) << '\n';
      }
      std::cout << out.str() << std::flush;
      return static_cast<int>(std::cout ? exit_ok : exit_failure);
    }
    report("no task " + escape_bytes(id) + " in " + label(q) + ": see spoolctl ls");
    return static_cast<int>(exit_failure);
  });
}

int run_redis_retry(const queue_config& q, const std::string& id) {
  return guarded([&] {
    redis_queue rq(q);
    std::size_t retried = 0;
    auto failed = rq.run({"XRANGE", rq.base_ + ":failed", "-", "+"});
    for (std::size_t i = 0; i < reply_size(failed.get()); ++i) {
      const redisReply* e = reply_at(failed.get(), i);
      const std::string entry = reply_text(reply_at(e, 0));
      auto fields = redis_queue::pairs(reply_at(e, 1));
      std::string tid;
      std::string priority;
      std::vector<std::string> add;
      for (const auto& [k, v] : fields) {
        if (k == "spoold.id") tid = v;
        if (k == "priority") priority = v;
        if (k == "spoold.attempt" || k == "spoold.error") continue;  // attempts reset, as for a directory
        add.push_back(k);
        add.push_back(v);
      }
      if (!id.empty() && tid != id) continue;
      if (tid.empty()) continue;  // a malformed entry without an id: by hand
      unsigned level = 0;
      const auto [end, ec] = std::from_chars(priority.data(), priority.data() + priority.size(), level);
      const bool has_level = !priority.empty() && ec == std::errc() && end == priority.data() + priority.size();
      const std::string stream = has_level ? rq.base_ + ":p" + std::to_string(level) : rq.base_;
      std::vector<std::string> xadd = {"XADD", stream, "*"};
      xadd.insert(xadd.end(), add.begin(), add.end());
      rq.run({"MULTI"});
      if (has_level) rq.run({"SADD", rq.base_ + ":priorities", std::to_string(level)});
      rq.run(std::move(xadd));
      rq.run({"XDEL", rq.base_ + ":failed", entry});
      rq.run({"EXEC"});
      ++retried;
      if (!id.empty()) break;
    }
    if (!id.empty() && retried == 0) {
      report("no failed task " + escape_bytes(id) + " in " + q.redis->stream + ":failed: see spoolctl ls");
      return static_cast<int>(exit_failure);
    }
    std::cout << "retried " << retried << " task(s): pending again\n" << std::flush;
    return static_cast<int>(std::cout ? exit_ok : exit_failure);
  });
}

int run_redis_purge(const queue_config& q, bool everything, bool yes) {
  if (everything && !yes) {
    if (::isatty(STDIN_FILENO) == 0) {
      report("purge --all deletes every task of " + label(q) + ": give --yes (no terminal to ask on)");
      return exit_usage;
    }
    std::cerr << "delete every task of " << label(q) << "? [y/N] " << std::flush;
    std::string answer;
    std::getline(std::cin, answer);
    if (answer != "y" && answer != "Y") {
      report("nothing deleted");
      return exit_failure;
    }
  }
  return guarded([&] {
    redis_queue rq(q);
    std::vector<std::string> keys = {rq.base_ + ":failed"};
    std::size_t count = static_cast<std::size_t>(reply_integer(rq.run({"XLEN", rq.base_ + ":failed"}).get()));
    if (everything) {
      const auto streams = rq.streams();
      for (const auto& t : rq.list()) {
        if (t.state != "failed") ++count;
        if (t.state == "delayed") keys.push_back(t.stream + ":task:" + t.id);
      }
      for (const auto& s : streams) {
        keys.insert(keys.end(), {s, s + ":delayed", s + ":ignored"});
      }
      keys.push_back(rq.base_ + ":priorities");
    }
    std::vector<std::string> del = {"DEL"};
    del.insert(del.end(), keys.begin(), keys.end());
    rq.run(std::move(del));
    std::cout << "purged " << count << " task(s)" << (everything ? "" : " from " + q.redis->stream + ":failed")
              << '\n'
              << std::flush;
    return static_cast<int>(std::cout ? exit_ok : exit_failure);
  });
}

int run_redis_stats(const std::vector<const queue_config*>& queues, bool as_json) {
  return guarded([&] {
    json doc;
    doc["queues"] = json::array();
    std::ostringstream out;
    out << "QUEUE  PENDING  DELAYED  IGNORED  FAILED  IN_FLIGHT  (Redis)\n";
    for (const queue_config* q : queues) {
      redis_queue rq(*q);
      std::map<std::string, std::size_t> n{{"pending", 0}, {"delayed", 0}, {"ignored", 0}, {"failed", 0}, {"in_flight", 0}};
      for (const auto& t : rq.list()) ++n[t.state];
      json j;
      j["name"] = q->name;
      j["stream"] = q->redis->stream;
      for (const auto& [k, v] : n) j[k] = v;
      doc["queues"].push_back(j);
      out << q->name << "  " << n["pending"] << "  " << n["delayed"] << "  " << n["ignored"] << "  " << n["failed"]
          << "  " << n["in_flight"] << "  " << q->redis->stream << " at " << q->redis->url.display() << '\n';
    }
    if (as_json) return print_json(doc);
    std::cout << out.str() << std::flush;
    return static_cast<int>(std::cout ? exit_ok : exit_failure);
  });
}

}  // namespace spoold

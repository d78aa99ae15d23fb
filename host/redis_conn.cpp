#include "redis_conn.hpp"

#include <sys/time.h>

#include <hiredis/hiredis.h>

namespace spoold {

namespace {

timeval to_timeval(std::chrono::milliseconds ms) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(ms.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((ms.count() % 1000) * 1000);
  return tv;
}

void to_argv(const std::vector<std::string_view>& argv, std::vector<const char*>& ptrs, std::vector<size_t>& lens) {
  ptrs.clear();
  lens.clear();
  for (const auto& a : argv) {
    ptrs.push_back(a.data());
    lens.push_back(a.size());
  }
}

}  // namespace

void redis_reply_free::operator()(redisReply* r) const {
  if (r != nullptr) freeReplyObject(r);
}

redis_conn::redis_conn(redis_conn&& o) noexcept : c_(o.c_), url_(std::move(o.url_)), timeout_(o.timeout_) {
  o.c_ = nullptr;
}
redis_conn& redis_conn::operator=(redis_conn&& o) noexcept {
  if (this != &o) {
    if (c_ != nullptr) redisFree(c_);
    c_ = o.c_;
    url_ = std::move(o.url_);
    timeout_ = o.timeout_;
    o.c_ = nullptr;
  }
  return *this;
}
redis_conn::~redis_conn() {
  if (c_ != nullptr) redisFree(c_);
}

bool redis_conn::broken() const { return c_ == nullptr || c_->err != 0; }

error redis_conn::transport_error(const std::string& doing) {
  std::string why = c_ == nullptr ? "not connected" : c_->errstr;
  if (c_ != nullptr && c_->err == REDIS_ERR_IO && why.empty()) why = "I/O error";
  if (why.find("Resource temporarily unavailable") != std::string::npos) why = "no answer in time";
  return make_error("Redis at " + url_.display() + ": " + doing + ": " + why, k_redis_unreachable);
}

result<redis_conn> redis_conn::connect(const redis_url& url, std::chrono::milliseconds timeout) {
  const timeval tv = to_timeval(timeout);
  redisContext* c = url.socket_path.empty() ? redisConnectWithTimeout(url.host.c_str(), static_cast<int>(url.port), tv)
                                            : redisConnectUnixWithTimeout(url.socket_path.c_str(), tv);
  if (c == nullptr) return make_error("Redis at " + url.display() + ": cannot allocate a connection");
  redis_conn conn(c, url);
  if (c->err != 0) {
    return make_error("Redis at " + url.display() + ": cannot connect: " + std::string(c->errstr) +
                          (url.socket_path.empty() ? "" : " (is redis-server running with unixsocket " + url.socket_path + "?)"),
                      k_redis_unreachable);
  }
  if (!url.password.empty()) {
    auto r = conn.command({"AUTH", url.password}, timeout);
    if (!r) return r.err();
    if (is_error(r->get())) {
      return make_error("Redis at " + url.display() + ": the password was refused (" + reply_text(r->get()) +
                        "): fix the password in the queue's url");
    }
  }
  if (url.db != 0) {
    const std::string db = std::to_string(url.db);
    auto r = conn.command({"SELECT", db}, timeout);
    if (!r) return r.err();
    if (is_error(r->get())) {
      return make_error("Redis at " + url.display() + ": SELECT " + db + ": " + reply_text(r->get()));
    }
  }
  return conn;
}

result<redis_reply> redis_conn::command(const std::vector<std::string_view>& argv, std::chrono::milliseconds timeout) {
  if (broken()) return transport_error("a command on a broken connection");
  if (!set_timeout(timeout)) return transport_error("set the timeout");
  std::vector<const char*> ptrs;
  std::vector<size_t> lens;
  to_argv(argv, ptrs, lens);
  void* r = redisCommandArgv(c_, static_cast<int>(ptrs.size()), ptrs.data(), lens.data());
  if (r == nullptr) return transport_error(std::string(argv.empty() ? "" : argv[0]));
  return redis_reply(static_cast<redisReply*>(r));
}

result<std::vector<redis_reply>> redis_conn::pipeline(const std::vector<std::vector<std::string_view>>& commands,
                                                      std::chrono::milliseconds timeout) {
  if (auto sent = send(commands, timeout); !sent) return sent.err();
  return receive(commands.size(), timeout);
}

// One setsockopt pair per change, not per command: a spooler sends an
// outcome per task, always with the same timeout.
bool redis_conn::set_timeout(std::chrono::milliseconds timeout) {
  if (timeout == timeout_) return true;
  if (redisSetTimeout(c_, to_timeval(timeout)) != REDIS_OK) return false;
  timeout_ = timeout;
  return true;
}

result<void> redis_conn::send(const std::vector<std::vector<std::string_view>>& commands,
                              std::chrono::milliseconds timeout) {
  if (broken()) return transport_error("a command on a broken connection");
  if (!set_timeout(timeout)) return transport_error("set the timeout");
  std::vector<const char*> ptrs;
  std::vector<size_t> lens;
  for (const auto& argv : commands) {
    to_argv(argv, ptrs, lens);
    if (redisAppendCommandArgv(c_, static_cast<int>(ptrs.size()), ptrs.data(), lens.data()) != REDIS_OK) {
      return transport_error("queue a command");
    }
  }
  // A blocking socket: each write takes what the kernel accepts.
  int done = 0;
  while (done == 0) {
    if (redisBufferWrite(c_, &done) != REDIS_OK) return transport_error("send");
  }
  return {};
}

result<std::vector<redis_reply>> redis_conn::receive(std::size_t n, std::chrono::milliseconds timeout) {
  if (broken()) return transport_error("a reply on a broken connection");
  if (!set_timeout(timeout)) return transport_error("set the timeout");
  std::vector<redis_reply> out;
  out.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    void* r = nullptr;
    if (redisGetReply(c_, &r) != REDIS_OK || r == nullptr) return transport_error("read a reply");
    out.emplace_back(static_cast<redisReply*>(r));
  }
  return out;
}

bool is_error(const redisReply* r) { return r != nullptr && r->type == REDIS_REPLY_ERROR; }

std::string reply_text(const redisReply* r) {
  if (r == nullptr) return {};
  if (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS || r->type == REDIS_REPLY_ERROR) {
    return std::string(r->str, r->len);
  }
  return {};
}

long long reply_integer(const redisReply* r) {
  return r != nullptr && r->type == REDIS_REPLY_INTEGER ? r->integer : 0;
}

std::size_t reply_size(const redisReply* r) {
  return r != nullptr && r->type == REDIS_REPLY_ARRAY ? r->elements : 0;
}

const redisReply* reply_at(const redisReply* r, std::size_t i) {
  return i < reply_size(r) ? r->element[i] : nullptr;
}

redis_probe probe_redis_queue(const std::string& queue, const redis_url& url, const std::string& stream,
                              std::chrono::milliseconds timeout) {
  const std::string who = "queue '" + queue + "': ";
  auto conn = redis_conn::connect(url, timeout);
  if (!conn) return {{who + conn.err().message}, conn.err().code == k_redis_unreachable};
  redis_probe out;
  std::vector<std::string>& problems = out.problems;
  const std::pair<std::string, const char*> keys[] = {{stream, "stream"},
                                                      {stream + ":failed", "stream"},
                                                      {stream + ":delayed", "zset"},
                                                      {stream + ":priorities", "set"}};
  for (const auto& [key, expected] : keys) {
    auto r = conn->command({"TYPE", key}, timeout);
    if (!r) return {{who + r.err().message}, true};
    const std::string type = reply_text(r->get());
    if (is_error(r->get())) {
      if (type.rfind("NOAUTH", 0) == 0) {
        return {{who + "Redis at " + url.display() + " needs a password (" + type +
                 "): add it to the url (redis://:PASSWORD@host:port/db)"},
                false};
      }
      return {{who + "Redis at " + url.display() + ": TYPE " + key + ": " + type}, false};
    }
    if (type != "none" && type != expected) {
      problems.push_back(who + "Redis at " + url.display() + ": key " + key + " is a " + type + ", not a " + expected +
                         ": this queue needs it for itself (choose another stream, or remove the key)");
    }
  }
  return out;
}

}  // namespace spoold

// Writing one task into a Redis queue (README, Redis Streams), shared by
// spoolctl enqueue and the python plugin's uwsgi.spool(), so that both lay
// out an entry, a priority and a delayed task as the spoolers read them
// (redis_source.hpp lists the keys) and as client/python/spoolredis.py does.
#pragma once

#include <chrono>
#include <optional>
#include <string>

#include "enqueue_task.hpp"
#include "redis_conn.hpp"
#include "redis_url.hpp"
#include "result.hpp"

namespace spoold {

// Checks a request for a Redis queue without talking to the server:
// check_task()'s rules (code EINVAL or E2BIG), and keys starting with
// "spoold." (the host's own fields) refused with EINVAL, a body over
// k_max_body_bytes or more fields than k_max_entry_fields with E2BIG: what
// a spooler would move to the failed stream is not written.
result<void> check_redis_task(const task_request& request);

// A producer's connection to one Redis queue, made on the first enqueue and
// kept for the next ones (a handler that spools in a loop pays one connect).
class redis_producer {
 public:
  redis_producer(redis_url url, std::string stream, std::chrono::milliseconds timeout);

  // Writes the task with this id in one MULTI/EXEC: the fields are the args
  // in order (task_args: `at` and `priority` of the options last), then
  // spoold.id and spoold.body; a priority N (task_priority) writes to
  // <stream>:p<N> and adds N to <stream>:priorities; a due time in the
  // future (task_due_ns) puts the fields in the list <s>:task:<id> and the
  // id in the zset <s>:delayed instead of the stream. A kept connection
  // that fails (the server closed it, restarted) is replaced and the write
  // tried once more. Errors name the server; a server that cannot be
  // reached has code k_redis_unreachable, a refused request
  // check_redis_task()'s code.
  result<void> enqueue(const task_request& request, const std::string& id);

  const redis_url& url() const { return url_; }
  const std::string& stream() const { return stream_; }

 private:
  redis_url url_;
  std::string stream_;
  std::chrono::milliseconds timeout_;
  std::optional<redis_conn> conn_;
};

}  // namespace spoold

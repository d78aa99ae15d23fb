// The two modules the plugin builds into the interpreter: `uwsgi` (what code
// written for uWSGI's spooler and Debian's uwsgidecorators use) and `spoold`
// (spoold's additions: SPOOL_FAIL, PermanentError, attempt()).
//
// They are registered as built-in modules (PyImport_AppendInittab) before
// the interpreter starts rather than created afterwards: the import system
// finds built-ins before anything on sys.path, so inside a spooler `import
// uwsgi` is always this module, even when the application also ships the
// producer-side client/python/uwsgi.py, and it is importable from the very
// first line of code the interpreter runs (site hooks, django.setup()).
#pragma once

#include <spoold/plugin.hpp>

#include <optional>
#include <string>

#include "py_ref.hpp"
#include "redis_producer.hpp"

namespace spoold::python {

inline constexpr int k_spool_fail = static_cast<int>(Status::Fail);

// What the modules know of their process. One interpreter per process, so
// one instance; set before the interpreter starts.
struct process_context {
  std::string queue;      // the queue's name
  std::string queue_dir;  // its directory, absolute: uwsgi.opt["spooler"] and where uwsgi.spool() writes
  // A Redis queue's "<stream> at <server>" (SPOOLD_QUEUE_REDIS), for
  // messages; queue_dir is then empty.
  std::string queue_redis;
  // A Redis queue's server and stream (SPOOLD_QUEUE_REDIS_URL and
  // SPOOLD_QUEUE_REDIS_STREAM): where uwsgi.spool() without a spooler key
  // writes. It connects on the first such call.
  std::optional<redis_producer> redis;
  long master_pid = 0;    // the spoold master
  const Task* task = nullptr;  // the task being handled, null between calls
};
process_context& context();

// Adds `uwsgi` and `spoold` to the built-in modules. Call once, before
// Py_InitializeFromConfig.
void register_modules();

// spoold.PermanentError, for the plugin's isinstance check (after init).
PyObject* permanent_error_type();

}  // namespace spoold::python

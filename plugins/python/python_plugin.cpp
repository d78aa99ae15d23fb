// python: runs a Python callable for each task, as uWSGI's spooler does.
//
// One CPython interpreter per spooler process, started in init() (after
// the fork, like every plugin); the application is imported once and the
// callable looked up once; handle() builds the dict uWSGI 2.0 builds, calls,
// and maps the result. Options and the call are described in README.md.
#include <spoold/plugin.hpp>

#include <unistd.h>

#include <chrono>
#include <stdexcept>
#include <string>

#include "interpreter.hpp"
#include "modules.hpp"
#include "options.hpp"
#include "py_ref.hpp"

namespace spoold::python {

namespace {

// What a call came to, before it becomes what the host records.
struct python_outcome {
  Status status = Status::Retry;
  std::string reason;  // empty: the host's own wording for the status
};

// The one place a Python outcome becomes a Status plus the reason the host
// records as spoold.error.
Status to_status(const Task& task, const python_outcome& o) {
  if (o.reason.empty()) return o.status;
  if (o.status == Status::Fail) return task.fail(o.reason);
  if (o.status == Status::Retry) return task.retry(o.reason);
  return o.status;
}

// uWSGI's reading of a return value: an int as is (bool is an int), any
// other object a Retry. -3 is spoold's Fail.
python_outcome outcome_of_return(PyObject* r) {
  if (PyLong_Check(r)) {
    int overflow = 0;
    const long v = PyLong_AsLongAndOverflow(r, &overflow);
    if (overflow == 0) {
      switch (v) {
        case static_cast<long>(Status::Ok): return {Status::Ok, {}};
        case static_cast<long>(Status::Retry): return {Status::Retry, {}};
        case static_cast<long>(Status::Ignore): return {Status::Ignore, {}};
        case static_cast<long>(Status::Fail): return {Status::Fail, {}};
        default: break;
      }
    }
  }
  py_ref text(PyObject_Repr(r));
  std::string shown = "an object";
  if (text) {
    const char* s = PyUnicode_AsUTF8(text.get());
    if (s != nullptr) shown = s;
  }
  PyErr_Clear();
  if (shown.size() > 200) shown = shown.substr(0, 200) + "...";
  const char* kind = PyLong_Check(r) ? "an int that is not a status" : Py_TYPE(r)->tp_name;
  return {Status::Retry, "the callable returned " + shown + " (" + kind +
                             "), not uwsgi.SPOOL_OK (-2), SPOOL_RETRY (-1), SPOOL_IGNORE (0) or spoold.SPOOL_FAIL "
                             "(-3): treated as Retry, as uWSGI does"};
}

// Holds the GIL for a scope and gives it back after: between tasks the
// interpreter's own threads (an app's log shipper, a Sentry transport) run
// while the spooler waits for work.
class gil_scope {
 public:
  explicit gil_scope(PyThreadState*& saved) : saved_(saved) { PyEval_RestoreThread(saved_); }
  ~gil_scope() { saved_ = PyEval_SaveThread(); }
  gil_scope(const gil_scope&) = delete;
  gil_scope& operator=(const gil_scope&) = delete;

 private:
  PyThreadState*& saved_;
};

// How long uwsgi.spool() waits for a Redis server to connect and to answer,
// as spoolctl does.
constexpr std::chrono::milliseconds k_redis_timeout{5000};

// The producer for the Redis queue of this spooler: its url (with the
// password) and stream, which the host exports beside SPOOLD_QUEUE_REDIS.
redis_producer redis_target() {
  const char* url = ::getenv("SPOOLD_QUEUE_REDIS_URL");
  const char* stream = ::getenv("SPOOLD_QUEUE_REDIS_STREAM");
  if (url == nullptr || *url == '\0' || stream == nullptr || *stream == '\0') {
    throw std::runtime_error("SPOOLD_QUEUE_REDIS_URL or SPOOLD_QUEUE_REDIS_STREAM is not set; spoold sets them in "
                             "each spooler of a Redis queue (is this host older than the python plugin?)");
  }
  std::string why;
  auto parsed = parse_redis_url(url, why);
  // The text itself is left out: it holds the password.
  if (!parsed) throw std::runtime_error("SPOOLD_QUEUE_REDIS_URL is not a Redis url: " + why);
  return redis_producer(std::move(*parsed), stream, k_redis_timeout);
}

py_ref bytes_of(std::string_view s) { return py_ref(PyBytes_FromStringAndSize(s.data(), static_cast<Py_ssize_t>(s.size()))); }

constexpr std::string_view k_bookkeeping_prefix = "spoold.";

class python_plugin final : public Plugin {
 public:
  ~python_plugin() override {
    if (!started_) return;
    // saved_ is null when init() failed after the start: the GIL is still ours.
    if (saved_ != nullptr) PyEval_RestoreThread(saved_);
    callable_ = py_ref();
    name_key_ = py_ref();
    body_key_ = py_ref();
    // atexit handlers run and buffers flush; a failure here only concerns
    // the app's own teardown, which the traceback on stderr shows.
    (void)Py_FinalizeEx();
  }

  void init(const InitContext& c) override {
    log_ = c.log;
    queue_ = std::string(c.queue);
    // The host names the queue and the plugin around these messages.
    python_options o = read_options(c.options);
    process_context& pc = context();
    pc.queue = queue_;
    const char* dir = ::getenv("SPOOLD_QUEUE_DIR");
    const char* redis = ::getenv("SPOOLD_QUEUE_REDIS");
    if (redis != nullptr && *redis != '\0') {
      pc.queue_redis = redis;
      pc.redis.emplace(redis_target());
      dir = "";
    } else if (dir == nullptr || *dir == '\0') {
      throw std::runtime_error("SPOOLD_QUEUE_DIR is not set; spoold sets it in each spooler process (is this host "
                               "older than the python plugin?)");
    }
    pc.queue_dir = dir;
    pc.master_pid = static_cast<long>(::getppid());
    start_interpreter(o);
    started_ = true;  // the GIL is ours from here: the destructor finalizes
    callable_ = load_application(o, log_);
    name_key_ = py_ref(PyUnicode_FromString("spooler_task_name"));
    body_key_ = py_ref(PyUnicode_FromString("body"));
    if (!name_key_ || !body_key_) throw std::runtime_error("out of memory at start");
    saved_ = PyEval_SaveThread();
  }

  Status handle(const Task& task) override {
    python_outcome o;
    {
      gil_scope gil(saved_);
      context().task = &task;
      o = call(task);
      context().task = nullptr;
    }
    return to_status(task, o);
  }

 private:
  // The dict uWSGI 2.0 passes (plugins/python/python_plugin.c,
  // uwsgi_python_spooler): 'spooler_task_name' (str key, bytes value)
  // first, then every arg as bytes: bytes in file order (a repeated key
  // keeps its first place and its last value), then 'body' (str key) when
  // the body is not empty. spoold's own spoold.* keys are left out.
  python_outcome call(const Task& task) {
    py_ref d(PyDict_New());
    if (!d) return from_exception(task);
    py_ref name = bytes_of(task.id());
    if (!name || PyDict_SetItem(d.get(), name_key_.get(), name.get()) != 0) return from_exception(task);
    const std::size_t n = task.arg_count();
    for (std::size_t i = 0; i < n; ++i) {
      const Task::Arg a = task.arg_at(i);
      if (a.key.substr(0, k_bookkeeping_prefix.size()) == k_bookkeeping_prefix) continue;
      py_ref k = bytes_of(a.key);
      py_ref v = bytes_of(a.value);
      if (!k || !v || PyDict_SetItem(d.get(), k.get(), v.get()) != 0) return from_exception(task);
    }
    if (!task.body().empty()) {
      py_ref body = bytes_of(task.body());
      if (!body || PyDict_SetItem(d.get(), body_key_.get(), body.get()) != 0) return from_exception(task);
    }
    py_ref r(PyObject_CallOneArg(callable_.get(), d.get()));
    if (!r) return from_exception(task);
    return outcome_of_return(r.get());
  }

  // An exception is a Retry (uWSGI prints it and retries), a
  // spoold.PermanentError a Fail; the traceback goes to the log.
  python_outcome from_exception(const Task& task) {
    std::string traceback;
    bool permanent = false;
    std::string text = take_exception(&traceback, &permanent, false);
    log_.warn("task " + std::string(task.id()) + " attempt=" + std::to_string(task.attempt()) + ": the callable raised " +
              text + (permanent ? " (permanent: the task fails now)" : "") + "\n" + traceback);
    return {permanent ? Status::Fail : Status::Retry, text};
  }

  Logger log_;
  std::string queue_;
  bool started_ = false;
  PyThreadState* saved_ = nullptr;
  py_ref callable_;
  py_ref name_key_;
  py_ref body_key_;
};

}  // namespace

}  // namespace spoold::python

SPOOLD_PLUGIN(spoold::python::python_plugin)

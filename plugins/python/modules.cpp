#include "modules.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <mutex>

#include "enqueue_task.hpp"

namespace spoold::python {

namespace {

process_context g_context;
PyObject* g_permanent_error = nullptr;  // a strong reference, kept for the life of the process

// Key and value bytes as uWSGI takes them (bytes and other buffers), and
// str as UTF-8, which uWSGI refuses under Python 3 (its users encode first;
// accepting text too breaks none of them).
bool to_bytes(PyObject* o, std::string& out, const char* what, PyObject* key) {
  if (PyUnicode_Check(o)) {
    Py_ssize_t n = 0;
    const char* s = PyUnicode_AsUTF8AndSize(o, &n);
    if (s == nullptr) return false;
    out.assign(s, static_cast<std::size_t>(n));
    return true;
  }
  if (PyObject_CheckBuffer(o)) {
    Py_buffer view;
    if (PyObject_GetBuffer(o, &view, PyBUF_SIMPLE) != 0) return false;
    out.assign(static_cast<const char*>(view.buf), static_cast<std::size_t>(view.len));
    PyBuffer_Release(&view);
    return true;
  }
  if (key == nullptr) {
    PyErr_Format(PyExc_ValueError, "uwsgi.spool(): a key is %s (%R): keys must be bytes or str", Py_TYPE(o)->tp_name, o);
  } else {
    PyErr_Format(PyExc_ValueError, "uwsgi.spool(): the %s of key %R is %s: values must be bytes or str",
                 what, key, Py_TYPE(o)->tp_name);
  }
  return false;
}

// uwsgi.spool() of a Redis queue's handler without a spooler key: the task
// goes into the queue's own stream, as spoolctl enqueue writes it, and its
// id comes back (a Redis task has no path).
PyObject* spool_to_redis(redis_producer& producer, const task_request& request) {
  // With the GIL released, two threads of the handler may spool at once;
  // they share one connection. Taken without the GIL, so a thread waiting
  // here never blocks the one that holds it.
  static std::mutex connection;
  const std::string id = make_task_name();
  result<void> written;
  Py_BEGIN_ALLOW_THREADS
  {
    const std::lock_guard<std::mutex> one_at_a_time(connection);
    written = producer.enqueue(request, id);
  }
  Py_END_ALLOW_THREADS
  if (!written) {
    return PyErr_Format(PyExc_ValueError, "uwsgi.spool(): unable to spool the task to %s: %s",
                        g_context.queue_redis.c_str(), written.err().message.c_str());
  }
  return PyBytes_FromStringAndSize(id.data(), static_cast<Py_ssize_t>(id.size()));
}

PyObject* spool(PyObject*, PyObject* args, PyObject* kw) {
  PyObject* dict = nullptr;
  const Py_ssize_t positional = PyTuple_GET_SIZE(args);
  const bool has_kw = kw != nullptr && PyDict_GET_SIZE(kw) > 0;
  if (positional > 1) {
    return PyErr_Format(PyExc_ValueError, "uwsgi.spool() takes one dict or keyword arguments, not %zd positional arguments",
                        positional);
  }
  if (positional == 1) {
    dict = PyTuple_GET_ITEM(args, 0);
    if (!PyDict_Check(dict)) {
      return PyErr_Format(PyExc_ValueError, "uwsgi.spool(): the argument must be a dict, not %s", Py_TYPE(dict)->tp_name);
    }
    if (has_kw) return PyErr_Format(PyExc_ValueError, "uwsgi.spool(): give a dict or keyword arguments, not both");
  } else {
    if (!has_kw) return PyErr_Format(PyExc_ValueError, "uwsgi.spool() needs a dict (or keyword arguments) to spool");
    dict = kw;
  }

  task_request request;
  std::string target = g_context.queue_dir;
  Py_ssize_t pos = 0;
  PyObject* key = nullptr;
  PyObject* value = nullptr;
  while (PyDict_Next(dict, &pos, &key, &value)) {
    owned_arg arg;
    if (!to_bytes(key, arg.key, "key", nullptr)) return nullptr;
    if (!to_bytes(value, arg.value, "value", key)) return nullptr;
    // As in uWSGI: `body` is the raw bytes after the args, not an arg, and
    // `spooler` names the directory to write to and stays in the args.
    if (arg.key == "body") {
      request.body = std::move(arg.value);
      continue;
    }
    if (arg.key == "spooler") {
      target = arg.value;
      struct stat st {};
      if (target.empty() || target.find('\0') != std::string::npos || ::stat(target.c_str(), &st) != 0 ||
          !S_ISDIR(st.st_mode)) {
        return PyErr_Format(PyExc_ValueError,
                            "uwsgi.spool(): spooler %R is not an existing directory (it names the queue directory to "
                            "write to, as under uWSGI)",
                            value);
      }
    }
    request.args.push_back(std::move(arg));
  }
  if (target.empty() && g_context.redis) return spool_to_redis(*g_context.redis, request);
  if (target.empty()) {
    return PyErr_Format(PyExc_ValueError, "uwsgi.spool(): this spooler does not know its queue directory "
                                          "(SPOOLD_QUEUE_DIR was not set): give the key spooler");
  }
  result<std::string> written = make_error("not written");
  Py_BEGIN_ALLOW_THREADS
  written = enqueue_task(target, request, make_task_name());
  Py_END_ALLOW_THREADS
  if (!written) {
    return PyErr_Format(PyExc_ValueError, "uwsgi.spool(): unable to spool the task to %s: %s", target.c_str(),
                        written.err().message.c_str());
  }
  return PyBytes_FromStringAndSize(written->data(), static_cast<Py_ssize_t>(written->size()));
}

PyObject* masterpid(PyObject*, PyObject*) { return PyLong_FromLong(g_context.master_pid); }
// A spooler is not a worker: uWSGI answers 0 there too.
PyObject* zero(PyObject*, PyObject*) { return PyLong_FromLong(0); }
PyObject* yes(PyObject*, PyObject*) { Py_RETURN_TRUE; }
PyObject* own_pid(PyObject*, PyObject*) { return PyLong_FromLong(static_cast<long>(::getpid())); }
// spoold has no uWSGI signals: none is ever registered.
PyObject* signal_registered(PyObject*, PyObject* args) {
  int signum = 0;
  if (!PyArg_ParseTuple(args, "i:signal_registered", &signum)) return nullptr;
  Py_RETURN_FALSE;
}

PyObject* attempt(PyObject*, PyObject*) {
  if (g_context.task == nullptr) {
    return PyErr_Format(PyExc_RuntimeError, "spoold.attempt() is only known while a task is being handled");
  }
  return PyLong_FromUnsignedLong(g_context.task->attempt());
}

PyMethodDef g_uwsgi_methods[] = {
    {"spool", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&spool)), METH_VARARGS | METH_KEYWORDS,
     "spool(dict) or spool(**kw): writes a task file into the queue (or the directory a 'spooler' key names) and "
     "returns its path; in a Redis queue without a 'spooler' key, adds the task to the queue's stream and returns "
     "its id"},
    {"send_to_spooler", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&spool)),
     METH_VARARGS | METH_KEYWORDS, "the same as spool()"},
    {"masterpid", masterpid, METH_NOARGS, "the pid of the spoold master"},
    {"worker_id", zero, METH_NOARGS, "0: a spooler is not a worker"},
    {"mule_id", zero, METH_NOARGS, "0: a spooler is not a mule"},
    {"i_am_the_spooler", yes, METH_NOARGS, "True"},
    {"spooler_pid", own_pid, METH_NOARGS, "this spooler's pid"},
    {"signal_registered", signal_registered, METH_VARARGS, "False: spoold has no uWSGI signals"},
    {nullptr, nullptr, 0, nullptr}};

PyMethodDef g_spoold_methods[] = {
    {"attempt", attempt, METH_NOARGS, "finished tries of the task being handled: 0 on the first try"},
    {nullptr, nullptr, 0, nullptr}};

PyModuleDef g_uwsgi_def = {PyModuleDef_HEAD_INIT, "uwsgi",
                           "The uWSGI spooler API, inside a spoold spooler process.", -1, g_uwsgi_methods,
                           nullptr, nullptr, nullptr, nullptr};
PyModuleDef g_spoold_def = {PyModuleDef_HEAD_INIT, "spoold", "spoold's additions to the uWSGI spooler API.", -1,
                            g_spoold_methods, nullptr, nullptr, nullptr, nullptr};

bool add_int(PyObject* m, const char* name, long v) { return PyModule_AddIntConstant(m, name, v) == 0; }

bool add_status_constants(PyObject* m) {
  return add_int(m, "SPOOL_OK", static_cast<int>(Status::Ok)) && add_int(m, "SPOOL_RETRY", static_cast<int>(Status::Retry)) &&
         add_int(m, "SPOOL_IGNORE", static_cast<int>(Status::Ignore));
}

bool add_owned(PyObject* m, const char* name, PyObject* value) {
  if (value == nullptr) return false;
  if (PyModule_AddObject(m, name, value) != 0) {
    Py_DECREF(value);
    return false;
  }
  return true;
}

PyObject* bytes_of(const std::string& s) { return PyBytes_FromStringAndSize(s.data(), static_cast<Py_ssize_t>(s.size())); }

PyObject* init_uwsgi() {
  py_ref m(PyModule_Create(&g_uwsgi_def));
  if (!m || !add_status_constants(m.get())) return nullptr;
  // uwsgi.opt is what uwsgidecorators checks for 'spooler'; uWSGI's values are bytes.
  py_ref opt(PyDict_New());
  if (!opt) return nullptr;
  py_ref dir(bytes_of(g_context.queue_dir));
  if (!dir || PyDict_SetItemString(opt.get(), "spooler", dir.get()) != 0) return nullptr;
  if (!add_owned(m.get(), "opt", opt.release())) return nullptr;
  if (!add_owned(m.get(), "spoolers", PyTuple_Pack(1, dir.get()))) return nullptr;
  char host[256] = {};
  if (::gethostname(host, sizeof(host) - 1) != 0) std::strcpy(host, "localhost");
  if (!add_owned(m.get(), "hostname", PyBytes_FromString(host))) return nullptr;
  return m.release();
}

PyObject* init_spoold() {
  py_ref m(PyModule_Create(&g_spoold_def));
  if (!m || !add_status_constants(m.get()) || !add_int(m.get(), "SPOOL_FAIL", k_spool_fail)) return nullptr;
  if (g_permanent_error == nullptr) {
    g_permanent_error = PyErr_NewExceptionWithDoc(
        "spoold.PermanentError",
        "Raise it from a spooler callable to fail the task at once: no more tries, the task goes to failed/ "
        "with the message as its error.",
        PyExc_Exception, nullptr);
    if (g_permanent_error == nullptr) return nullptr;
  }
  Py_INCREF(g_permanent_error);
  if (!add_owned(m.get(), "PermanentError", g_permanent_error)) return nullptr;
  if (!add_owned(m.get(), "queue", PyUnicode_DecodeFSDefault(g_context.queue.c_str()))) return nullptr;
  if (!add_owned(m.get(), "queue_dir", PyUnicode_DecodeFSDefault(g_context.queue_dir.c_str()))) return nullptr;
  return m.release();
}

}  // namespace

process_context& context() { return g_context; }

void register_modules() {
  PyImport_AppendInittab("uwsgi", &init_uwsgi);
  PyImport_AppendInittab("spoold", &init_spoold);
}

PyObject* permanent_error_type() { return g_permanent_error; }

}  // namespace spoold::python

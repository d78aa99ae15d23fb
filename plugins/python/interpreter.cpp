#include "interpreter.hpp"

#include <dlfcn.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "modules.hpp"

#ifndef SPOOLD_PYTHON_EXECUTABLE
#error "SPOOLD_PYTHON_EXECUTABLE (the interpreter that matches the embedded libpython) must be defined"
#endif

namespace spoold::python {

namespace {

// Helpers written in Python, where the standard library already formats
// exceptions and imports files; compiled once at start.
constexpr const char* k_support_source = R"PY(
import importlib.util, sys, traceback

def describe(exc):
    t = type(exc)
    name = t.__qualname__ if t.__module__ in ('builtins', '__main__') else t.__module__ + '.' + t.__qualname__
    where = ''
    if isinstance(exc, SyntaxError) and exc.filename:
        text = '%s: %s' % (name, exc.msg)
        where = '%s:%s' % (exc.filename, exc.lineno)
    else:
        try:
            message = str(exc)
        except BaseException as e:
            message = '(str() of the exception raised %s)' % type(e).__name__
        text = '%s: %s' % (name, message) if message else name
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if not f.filename.startswith('<frozen ')]
        if frames:
            where = '%s:%s' % (frames[-1].filename, frames[-1].lineno)
    return text, where, ''.join(traceback.format_exception(exc)).rstrip('\n')

def load_file(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None:
        raise ImportError('%s is not a Python source file (give a .py file)' % path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module
)PY";

py_ref g_support;  // the helpers' globals

bool is_dir(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}
bool is_file(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

std::string python_version_dir() { return "python" + std::to_string(PY_MAJOR_VERSION) + "." + std::to_string(PY_MINOR_VERSION); }

void check_virtualenv(const std::string& venv) {
  if (venv.empty()) return;
  const std::string fix = " (make one with " SPOOLD_PYTHON_EXECUTABLE " -m venv " + venv + ")";
  if (!is_dir(venv)) throw std::runtime_error("virtualenv " + venv + " is not a directory" + fix);
  if (!is_file(venv + "/pyvenv.cfg")) {
    throw std::runtime_error("virtualenv " + venv + " has no pyvenv.cfg: it is not a virtual environment" + fix);
  }
  const std::string site = venv + "/lib/" + python_version_dir() + "/site-packages";
  if (!is_dir(site)) {
    throw std::runtime_error("virtualenv " + venv + " has no lib/" + python_version_dir() +
                             "/site-packages: it was not made for the Python " + std::to_string(PY_MAJOR_VERSION) +
                             "." + std::to_string(PY_MINOR_VERSION) + " this plugin embeds" + fix);
  }
  if (!is_file(venv + "/bin/python")) throw std::runtime_error("virtualenv " + venv + " has no bin/python" + fix);
}

// The host loads plugins RTLD_LOCAL, so libpython, loaded as our
// dependency, is local too; Debian's extension modules (_json, _pickle,
// _ctypes, ...) are built without a link to libpython and expect its
// symbols in the global scope. Promote the copy already loaded.
void promote_libpython() {
  Dl_info info{};
  if (::dladdr(reinterpret_cast<void*>(&Py_InitializeFromConfig), &info) == 0 || info.dli_fname == nullptr) {
    throw std::runtime_error("cannot find which libpython this plugin is linked with (dladdr failed)");
  }
  ::dlerror();
  if (::dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_GLOBAL) == nullptr) {
    const char* why = ::dlerror();
    throw std::runtime_error(std::string("cannot make ") + info.dli_fname +
                             " global (dlopen RTLD_NOLOAD|RTLD_GLOBAL): " + (why ? why : "unknown error") +
                             "; Python extension modules need its symbols");
  }
}

std::string status_text(const PyStatus& s) {
  std::string out = s.func ? std::string(s.func) + ": " : std::string();
  out += s.err_msg ? s.err_msg : "failed";
  if (PyStatus_IsExit(s)) out += " (exit code " + std::to_string(s.exitcode) + ")";
  return out;
}

void set_config_string(PyConfig& config, wchar_t** field, const std::string& value, const char* what) {
  PyStatus s = PyConfig_SetBytesString(&config, field, value.c_str());
  if (PyStatus_Exception(s)) {
    PyConfig_Clear(&config);
    throw std::runtime_error(std::string("cannot set the interpreter's ") + what + " to " + value + ": " + status_text(s));
  }
}

// The Python error as a one-line message with where it happened; the
// traceback to the log.
std::runtime_error python_failure(const std::string& doing, const Logger& log, const std::string& hint = {}) {
  std::string traceback;
  std::string text = take_exception(&traceback, nullptr, true);
  if (!traceback.empty()) log.warn(doing + " failed:\n" + traceback);
  return std::runtime_error(doing + " failed: " + text + (hint.empty() ? "" : "; " + hint));
}

PyObject* support(const char* name) { return PyDict_GetItemString(g_support.get(), name); }

}  // namespace

void start_interpreter(const python_options& o) {
  static bool started = false;
  if (started) {
    throw std::runtime_error("the python plugin is already running an interpreter in this spooler: it can appear "
                             "once in a queue's plugin chain");
  }
  check_virtualenv(o.virtualenv);
  if (!o.file.empty() && !is_file(o.file)) throw std::runtime_error("file " + o.file + " does not exist or is not a file");
  for (const auto& [name, value] : o.env) {
    if (::setenv(name.c_str(), value.c_str(), 1) != 0) {
      throw std::runtime_error("cannot set the environment variable " + name + " (option env." + name + "): " +
                               std::strerror(errno));
    }
  }
  if (!o.django_settings.empty() && ::setenv("DJANGO_SETTINGS_MODULE", o.django_settings.c_str(), 1) != 0) {
    throw std::runtime_error(std::string("cannot set DJANGO_SETTINGS_MODULE: ") + std::strerror(errno));
  }
  promote_libpython();
  register_modules();
  started = true;

  PyConfig config;
  PyConfig_InitPythonConfig(&config);
  config.install_signal_handlers = 0;  // the spooler's signals stay spoold's
  config.buffered_stdio = 0;           // print() reaches the log before the spooler _exit()s
  config.faulthandler = 1;             // a crash prints the Python stack to the log, then dies of its signal
  config.parse_argv = 0;
  // The executable decides sys.prefix: the virtualenv's python finds its
  // pyvenv.cfg, as when that venv's python runs, so site adds its
  // site-packages (and the system's only if the venv was made so).
  const std::string executable = o.virtualenv.empty() ? std::string(SPOOLD_PYTHON_EXECUTABLE) : o.virtualenv + "/bin/python";
  set_config_string(config, &config.program_name, executable, "program name");
  set_config_string(config, &config.executable, executable, "executable");
  char argv0[] = "spoold";
  char* argv[] = {argv0, nullptr};
  PyStatus s = PyConfig_SetBytesArgv(&config, 1, argv);
  if (!PyStatus_Exception(s)) s = Py_InitializeFromConfig(&config);
  PyConfig_Clear(&config);
  if (PyStatus_Exception(s)) throw std::runtime_error("the Python interpreter did not start: " + status_text(s));

  PyObject* sys_path = PySys_GetObject("path");  // borrowed
  if (sys_path == nullptr || !PyList_Check(sys_path)) throw std::runtime_error("sys.path is not a list");
  for (std::size_t i = 0; i < o.path.size(); ++i) {
    py_ref entry(PyUnicode_DecodeFSDefault(o.path[i].c_str()));
    if (!entry || PyList_Insert(sys_path, static_cast<Py_ssize_t>(i), entry.get()) != 0) {
      PyErr_Clear();
      throw std::runtime_error("cannot add " + o.path[i] + " to sys.path");
    }
  }

  g_support = py_ref(PyDict_New());
  if (g_support) PyDict_SetItemString(g_support.get(), "__builtins__", PyEval_GetBuiltins());
  py_ref ran(g_support ? PyRun_String(k_support_source, Py_file_input, g_support.get(), g_support.get()) : nullptr);
  if (!ran) {
    PyErr_Print();
    throw std::runtime_error("the plugin's Python helpers did not load (see the traceback above)");
  }
}

std::string take_exception(std::string* traceback, bool* permanent, bool with_location) {
  PyObject* type = nullptr;
  PyObject* value = nullptr;
  PyObject* tb = nullptr;
  PyErr_Fetch(&type, &value, &tb);
  if (type == nullptr) return "no Python exception was set";
  PyErr_NormalizeException(&type, &value, &tb);
  py_ref t(type), v(value), trace(tb);
  if (trace && v) PyException_SetTraceback(v.get(), trace.get());
  if (permanent != nullptr) {
    *permanent = permanent_error_type() != nullptr && PyErr_GivenExceptionMatches(v.get(), permanent_error_type());
  }
  std::string name = reinterpret_cast<PyTypeObject*>(t.get())->tp_name;
  PyObject* describe = support("describe");
  py_ref d(describe ? PyObject_CallOneArg(describe, v.get()) : nullptr);
  const char* text = nullptr;
  const char* where = nullptr;
  const char* formatted = nullptr;
  if (!d || !PyArg_ParseTuple(d.get(), "sss", &text, &where, &formatted)) {
    PyErr_Clear();
    return name + " (its message could not be formatted)";
  }
  if (traceback != nullptr) *traceback = formatted;
  std::string out = text;
  if (with_location && *where != '\0') out += std::string(" (at ") + where + ")";
  return out;
}

py_ref load_application(const python_options& o, const Logger& log) {
  if (!o.django_settings.empty()) {
    py_ref django(PyImport_ImportModule("django"));
    if (!django) {
      throw python_failure("import django (for django_settings = " + o.django_settings + ")", log,
                           "install Django (Debian: python3-django) or add its virtualenv");
    }
    py_ref done(PyObject_CallMethod(django.get(), "setup", nullptr));
    if (!done) throw python_failure("django.setup() with DJANGO_SETTINGS_MODULE=" + o.django_settings, log);
  }
  py_ref module;
  std::string what;
  if (!o.module.empty()) {
    what = "module '" + o.module + "'";
    module = py_ref(PyImport_ImportModule(o.module.c_str()));
    if (!module) throw python_failure("importing " + what, log);
  } else {
    std::string stem = o.file.substr(o.file.rfind('/') + 1);
    if (stem.size() > 3 && stem.compare(stem.size() - 3, 3, ".py") == 0) stem.resize(stem.size() - 3);
    what = "file " + o.file;
    module = py_ref(PyObject_CallFunction(support("load_file"), "ss", stem.c_str(), o.file.c_str()));
    if (!module) throw python_failure("importing " + what, log);
  }

  py_ref callable;
  if (!o.callable.empty()) {
    callable = py_ref::borrowed(module.get());
    std::string walked;
    for (std::size_t start = 0; start <= o.callable.size();) {
      std::size_t dot = o.callable.find('.', start);
      if (dot == std::string::npos) dot = o.callable.size();
      const std::string part = o.callable.substr(start, dot - start);
      walked += (walked.empty() ? "" : ".") + part;
      callable = py_ref(PyObject_GetAttrString(callable.get(), part.c_str()));
      if (!callable) {
        PyErr_Clear();
        throw std::runtime_error(what + " has no attribute '" + walked + "' (option callable = '" + o.callable + "')");
      }
      start = dot + 1;
    }
    if (!PyCallable_Check(callable.get())) {
      throw std::runtime_error("option callable = '" + o.callable + "' names a " + Py_TYPE(callable.get())->tp_name +
                               " in " + what + ", not a function");
    }
    return callable;
  }
  py_ref uwsgi(PyImport_ImportModule("uwsgi"));
  if (!uwsgi) throw python_failure("import uwsgi", log);
  callable = py_ref(PyObject_GetAttrString(uwsgi.get(), "spooler"));
  if (!callable) {
    PyErr_Clear();
    throw std::runtime_error(what + " did not assign uwsgi.spooler and the option callable is not set: assign "
                             "uwsgi.spooler = <function> in it (uwsgidecorators does), or name the function with "
                             "callable = \"...\"");
  }
  if (!PyCallable_Check(callable.get())) {
    throw std::runtime_error(what + " assigned a " + std::string(Py_TYPE(callable.get())->tp_name) +
                             " to uwsgi.spooler, not a function");
  }
  return callable;
}

}  // namespace spoold::python
